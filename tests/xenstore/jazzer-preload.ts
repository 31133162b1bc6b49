// Loaded with `node --import` by fuzz-driver.ts on machines where the prebuilt
// jazzer.js addon needs the compatibility route: makes jazzer.js load the
// patched copy named by $XS_JAZZER_ADDON instead of the one in node_modules.
const addon = process.env['XS_JAZZER_ADDON'];
const original = process.dlopen.bind(process);
process.dlopen = ((module: { exports: unknown }, filename: string, flags?: number): void => {
  const target = addon !== undefined && /@jazzer\.js[/\\]fuzzer[/\\]prebuilds[/\\]fuzzer-[^/\\]+\.node$/.test(filename) ? addon : filename;
  if (flags === undefined) original(module, target);
  else original(module, target, flags);
}) as typeof process.dlopen;
export {};
