// The project's TypeScript libraries (ES2023 + @types/node 20) do not declare Node's
// WebAssembly global, so the small part the stub-domain runtime uses is typed here.

export interface WasmMemory { readonly buffer: ArrayBuffer }
export interface WasmGlobal { readonly value: unknown }
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- opaque handle
export interface WasmModule {}
export interface WasmInstance { readonly exports: Readonly<Record<string, unknown>> }
export interface WasmImportDescriptor { readonly module: string; readonly name: string; readonly kind: string }
export type WasmImports = Record<string, Record<string, unknown>>;

interface WasmApi {
  Module: { new (bytes: Uint8Array): WasmModule; imports(module: WasmModule): WasmImportDescriptor[] };
  Instance: new (module: WasmModule, imports: WasmImports) => WasmInstance;
  Memory: new (descriptor: { initial: number }) => WasmMemory;
  Global: new (descriptor: { value: string }, value: number) => WasmGlobal;
}

export const Wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
