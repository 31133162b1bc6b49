// jazzer.js entry point for the envelope decoder (see targets.ts):
//   npx jazzer .cache/idl-dist/idl/fuzz/envelope.fuzz.js
import { envelopeTarget } from './targets.js';

export function fuzz(data: Uint8Array): void {
  envelopeTarget.fuzz(data);
}
