// `node dist/microhv/main.js run ...`: starts `microhv run` (run.ts) from its bundle when the build
// made a current one (worker-path.ts), so that the start-up of the core loads one file rather than
// some fifty modules; otherwise from its modules.
import { entryPoint } from './worker-path.js';

await import(entryPoint('microhv/run'));
