/**
 * What the committed guest's init (guest-images/init) is asked to do, as the Node CLI and the
 * browser's startVm both ask it: where share n is mounted, and the shell line that mounts the
 * virtio-fs shares (init itself mounts only 9p shares, from `storvm.share=` arguments) before the
 * command, or before the console shell when there is none.
 */

/** Where share n is mounted in the guest: the first at /mnt/host, the others at /mnt/TAG. */
export function mountPoint(index: number, tag: string): string {
  return index === 0 ? '/mnt/host' : `/mnt/${tag}`;
}

/**
 * The guest shell line that mounts a virtio-fs share, or stops with status 125 if it can't (mount
 * says why). Short, since it travels base64-encoded in the 1024-byte kernel command line.
 */
export function virtiofsMount(tag: string, dir: string, readOnly: boolean): string {
  return `mkdir -p ${dir}&&mount -t virtiofs ${readOnly ? '-o ro ' : ''}${tag} ${dir}||exit 125`;
}

/**
 * What init runs: the virtio-fs mounts, then the command; with no command the mounts and then
 * the console shell init would have started, with the terminal as init leaves it for a shell.
 */
export function guestCommand(mounts: string[], command: string[]): string {
  if (mounts.length === 0) return command.join(' ');
  const tail = command.length > 0 ? command.join(' ') : 'stty onlcr echo 2>/dev/null; setsid cttyhack sh';
  return [...mounts, tail].join('; ');
}
