/** Vite's `?url` imports: the URL of an asset. */
declare module '*?url' {
  const url: string;
  export default url;
}
