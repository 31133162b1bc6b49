// What passes between the core's main thread and a vCPU worker.

/** Words of the shared control block (Int32Array). */
export const VCPU_CTL = {
  /** Main → vCPU: leave the run loop for good. */
  STOP: 0,
  /** Main → vCPU: 1 while the vCPU must not run. */
  PAUSE: 1,
  /** vCPU → main: 1 once the vCPU has noticed PAUSE and sits outside KVM_RUN. */
  PAUSED: 2,
  WORDS: 4,
} as const;

export interface VcpuInput {
  readonly index: number;
  readonly vcpuFd: number;
  readonly mmapSize: number;
  readonly kickSignal: number;
  readonly control: SharedArrayBuffer;
  readonly stats: SharedArrayBuffer;
  /** RangeTable and EndpointTable (microhv/ioreq), shared with the main thread. */
  readonly ranges: SharedArrayBuffer;
  readonly endpoints: SharedArrayBuffer;
}

export type VcpuEvent =
  | { readonly type: 'ready'; readonly tid: number }
  | { readonly type: 'stopped' }
  | { readonly type: 'power'; readonly kind: 'poweroff' | 'reset' | 'crash'; readonly detail?: string }
  | { readonly type: 'failed'; readonly detail: string };
