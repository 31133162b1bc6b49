// jazzer.js entry point for the ring-records decoder (see targets.ts):
//   npx jazzer .cache/idl-dist/idl/fuzz/ring-records.fuzz.js
import { ringRecordsTarget } from './targets.js';

export function fuzz(data: Uint8Array): void {
  ringRecordsTarget.fuzz(data);
}
