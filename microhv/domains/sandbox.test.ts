import { describe, expect, test } from 'vitest';
import { wrapCommand, type SandboxPlan } from './sandbox.js';

const full: SandboxPlan = { unshare: '/usr/bin/unshare', setpriv: '/usr/bin/setpriv', namespaces: ['user', 'mount', 'net', 'ipc', 'pid'], dropCaps: true, summary: '' };
const node = ['/usr/bin/node', 'main.js', '--console-log', '/tmp/c.log'];

describe('sandbox command line', () => {
  test('runs_node_under_unshare_then_setpriv_with_every_namespace_and_a_fresh_proc', () => {
    expect(wrapCommand(full, node)).toEqual([
      '/usr/bin/unshare', '--user', '--map-root-user', '--mount', '--net', '--ipc', '--pid', '--fork', '--kill-child', '--mount-proc', '--',
      '/usr/bin/setpriv', '--no-new-privs', '--bounding-set=-all', '--inh-caps=-all', '--',
      ...node,
    ]);
  });

  test('a_pid_namespace_without_a_mount_namespace_keeps_the_old_proc', () => {
    const argv = wrapCommand({ ...full, namespaces: ['user', 'pid'] }, node);
    expect(argv.slice(0, 7)).toEqual(['/usr/bin/unshare', '--user', '--map-root-user', '--pid', '--fork', '--kill-child', '--']);
    expect(argv).not.toContain('--mount-proc');
  });

  test('keeps_the_namespace_order_whatever_order_the_plan_lists', () => {
    const argv = wrapCommand({ ...full, namespaces: ['net', 'user'], setpriv: undefined }, node);
    expect(argv).toEqual(['/usr/bin/unshare', '--user', '--map-root-user', '--net', '--', ...node]);
  });

  test('without_namespaces_only_setpriv_wraps_node', () => {
    expect(wrapCommand({ ...full, namespaces: [], dropCaps: false }, node)).toEqual(['/usr/bin/setpriv', '--no-new-privs', '--', ...node]);
  });

  test('without_either_tool_node_runs_as_given', () => {
    expect(wrapCommand({ namespaces: [], dropCaps: false, summary: '' }, node)).toEqual(node);
  });
});
