// The page loads build.py's copy of comlink's ESM build; its types are the npm package's.
export * from 'comlink';
