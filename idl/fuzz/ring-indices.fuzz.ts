// jazzer.js entry point for the ring-indices decoder (see targets.ts):
//   npx jazzer .cache/idl-dist/idl/fuzz/ring-indices.fuzz.js
import { ringIndicesTarget } from './targets.js';

export function fuzz(data: Uint8Array): void {
  ringIndicesTarget.fuzz(data);
}
