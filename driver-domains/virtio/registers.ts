// Driver writes to the common configuration (virtio 1.2, 4.1.4.3), as a table: each field's
// offset (from the generated VirtioPciCommonCfg record), width and handler. A field without a
// handler is read-only. A 64-bit field also takes two 32-bit halves (4.1.3.1), which is how
// Linux writes queue_desc, queue_driver and queue_device.
import { VirtioPciCommonCfg, VirtioTransportState, VirtqState } from '../../idl/generated/virtio.js';
import { STATUS, type StateRef } from './device.js';
import type { VirtioPciTransport } from './transport.js';

type Part = 'all' | 'lo' | 'hi';
interface Field {
  readonly name: string;
  readonly at: number;
  readonly width: 1 | 2 | 4 | 8;
  readonly write?: (t: VirtioPciTransport, v: bigint, part: Part) => void;
}

const O = VirtioPciCommonCfg.OFFSET;

/** The selected queue's record, or undefined (counted) when queue_select names none. */
function selected(t: VirtioPciTransport, changesLayout: boolean): (StateRef & { q: number }) | undefined {
  const { t: ts, o } = t.regs;
  const q = VirtioTransportState.getQueueSelect(ts.m, ts.base);
  // GUEST-INPUT: queue_select may name a queue the device does not have.
  if (q >= o.device.numQueues) {
    o.counters.bump('bad_queue_select', `${q}`);
    return undefined;
  }
  const s = t.queueRef(q);
  // GUEST-INPUT: size and addresses are fixed once the queue is enabled (4.1.4.3.2).
  if (changesLayout && VirtqState.getEnabled(s.m, s.base) !== 0) {
    o.counters.bump('queue_change_enabled', `queue ${q}`);
    return undefined;
  }
  return { q, m: s.m, base: s.base };
}

function address(get: (m: StateRef['m'], b: number) => bigint, set: (m: StateRef['m'], b: number, v: bigint) => void) {
  return (t: VirtioPciTransport, v: bigint, part: Part): void => {
    const s = selected(t, true);
    if (s === undefined) return;
    const old = get(s.m, s.base);
    const next = part === 'all' ? v : part === 'lo' ? (old & 0xffff_ffff_0000_0000n) | v : (old & 0xffff_ffffn) | (v << 32n);
    set(s.m, s.base, next);
  };
}

const FIELDS: readonly Field[] = [
  {
    name: 'device_feature_select', at: O.deviceFeatureSelect, width: 4,
    write: (t, v) => VirtioTransportState.setDeviceFeatureSelect(t.regs.t.m, t.regs.t.base, Number(v)),
  },
  { name: 'device_feature', at: O.deviceFeature, width: 4 },
  {
    name: 'driver_feature_select', at: O.driverFeatureSelect, width: 4,
    write: (t, v) => VirtioTransportState.setDriverFeatureSelect(t.regs.t.m, t.regs.t.base, Number(v)),
  },
  {
    name: 'driver_feature', at: O.driverFeature, width: 4,
    write: (t, v) => {
      const { t: ts, o } = t.regs;
      // GUEST-INPUT: the features are fixed once FEATURES_OK is set (3.1.1 step 5).
      if ((t.status() & STATUS.FEATURES_OK) !== 0) {
        o.counters.bump('features_after_ok');
        return;
      }
      const sel = VirtioTransportState.getDriverFeatureSelect(ts.m, ts.base);
      if (sel === 0) VirtioTransportState.setDriverFeaturesLo(ts.m, ts.base, Number(v));
      else if (sel === 1) VirtioTransportState.setDriverFeaturesHi(ts.m, ts.base, Number(v));
      // Windows past 63 hold no feature; the value is dropped.
    },
  },
  {
    name: 'config_msix_vector', at: O.configMsixVector, width: 2,
    write: (t, v) => VirtioTransportState.setConfigMsixVector(t.regs.t.m, t.regs.t.base, t.vector(Number(v), 'config')),
  },
  { name: 'num_queues', at: O.numQueues, width: 2 },
  { name: 'device_status', at: O.deviceStatus, width: 1, write: (t, v) => t.writeStatus(Number(v)) },
  { name: 'config_generation', at: O.configGeneration, width: 1 },
  {
    name: 'queue_select', at: O.queueSelect, width: 2,
    write: (t, v) => VirtioTransportState.setQueueSelect(t.regs.t.m, t.regs.t.base, Number(v)),
  },
  {
    name: 'queue_size', at: O.queueSize, width: 2,
    write: (t, v) => {
      const s = selected(t, true);
      // Checked (power of 2, at most the maximum) when the queue is enabled.
      if (s !== undefined) VirtqState.setSize(s.m, s.base, Number(v));
    },
  },
  {
    name: 'queue_msix_vector', at: O.queueMsixVector, width: 2,
    write: (t, v) => {
      const s = selected(t, false);
      if (s !== undefined) VirtqState.setMsixVector(s.m, s.base, t.vector(Number(v), `queue ${s.q}`));
    },
  },
  {
    name: 'queue_enable', at: O.queueEnable, width: 2,
    write: (t, v) => {
      const s = selected(t, false);
      if (s === undefined) return;
      const { o } = t.regs;
      // GUEST-INPUT: without VIRTIO_F_RING_RESET a queue is only ever enabled, before DRIVER_OK.
      if (v === 0n) o.counters.bump('queue_disable', `queue ${s.q}`);
      else if ((t.status() & STATUS.DRIVER_OK) !== 0) o.counters.bump('queue_enable_late', `queue ${s.q}`);
      else if (VirtqState.getEnabled(s.m, s.base) === 0) t.enableQueue(s.q);
    },
  },
  { name: 'queue_notify_off', at: O.queueNotifyOff, width: 2 },
  { name: 'queue_desc', at: O.queueDesc, width: 8, write: address(VirtqState.getDesc, VirtqState.setDesc) },
  { name: 'queue_driver', at: O.queueDriver, width: 8, write: address(VirtqState.getDriver, VirtqState.setDriver) },
  { name: 'queue_device', at: O.queueDevice, width: 8, write: address(VirtqState.getDevice, VirtqState.setDevice) },
  // Present in the layout, but their features (NOTIF_CONFIG_DATA, RING_RESET, ADMIN_VQ) are not offered.
  { name: 'queue_notify_data', at: O.queueNotifyData, width: 2 },
  { name: 'queue_reset', at: O.queueReset, width: 2 },
  { name: 'admin_queue_index', at: O.adminQueueIndex, width: 2 },
  { name: 'admin_queue_num', at: O.adminQueueNum, width: 2 },
];

/** A driver write inside the common configuration (offset + size within the record). */
export function writeCommonField(t: VirtioPciTransport, offset: number, size: number, v: bigint): void {
  const counters = t.regs.o.counters;
  const f = FIELDS.find((x) => offset >= x.at && offset < x.at + x.width);
  // GUEST-INPUT: each field is written whole at its natural width, 64-bit ones also as halves.
  let part: Part | undefined;
  if (f !== undefined && offset === f.at && size === f.width) part = 'all';
  else if (f !== undefined && f.width === 8 && size === 4) part = offset === f.at ? 'lo' : 'hi';
  if (f === undefined || part === undefined) {
    counters.bump('bad_access', `write ${size} at common 0x${offset.toString(16)}`);
    return;
  }
  if (f.write === undefined) {
    counters.bump('read_only_write', f.name);
    return;
  }
  f.write(t, v, part);
}
