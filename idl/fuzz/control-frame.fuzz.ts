// jazzer.js entry point for the control-frame decoder (see targets.ts):
//   npx jazzer .cache/idl-dist/idl/fuzz/control-frame.fuzz.js
import { controlFrameTarget } from './targets.js';

export function fuzz(data: Uint8Array): void {
  controlFrameTarget.fuzz(data);
}
