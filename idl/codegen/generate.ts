// Runs the whole generator: .proto files in, a map of output path to
// content out. Pure apart from reading the .proto files, so the check mode
// can compare its result with the tree without writing anything.

import path from 'node:path';
import { loadModel } from './model.js';
import { emitTs, header } from './emit-ts.js';
import { emitAs } from './emit-as.js';

/** The specs, relative to idl/proto/. options.proto is only imported. */
export const PROTO_FILES = ['control.proto', 'ring.proto', 'ioreq.proto', 'evtchn.proto', 'virtio.proto', 'block.proto'] as const;

/** Output folders, relative to the repository root. */
export const TS_OUT = 'idl/generated';
export const AS_OUT = 'idl/assembly/generated';

export function generate(repoRoot: string): Map<string, string> {
  const protoRoot = path.join(repoRoot, 'idl', 'proto');
  const model = loadModel(protoRoot, PROTO_FILES);
  const out = new Map<string, string>();
  for (const file of model.files) {
    out.set(`${TS_OUT}/${file.name}.ts`, emitTs(model, file));
    const as = emitAs(file, header(file.source));
    if (as !== null) out.set(`${AS_OUT}/${file.name}.ts`, as);
  }
  return out;
}
