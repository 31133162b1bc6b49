// The shell command the test-host tests use to run `microhv run` on the embedded guest: console log in
// /tmp/console.log, microhv's own messages in /tmp/err.txt, then `run-exit=STATUS` on the output.
// `extra` holds further options (faults, --until, --disk); microhv's own --timeout ends the run after
// `timeoutS`, and a hard kill 20 s later bounds it whatever it does.
export function microhvRunCommand(cmdline: string, extra: string, vcpus = 1, timeoutS = 260): string {
  return `timeout -s KILL ${timeoutS + 20} node dist/microhv/main.js run --kernel .cache/guest/vmlinuz --initrd .cache/guest/initramfs.cpio --vcpus ${vcpus} `
    + `--cmdline '${cmdline}' --console-log /tmp/console.log --timeout ${timeoutS} ${extra} >/dev/null 2>/tmp/err.txt; echo run-exit=$?; `;
}
