// Build logs are read in browsers and terminals: terminal control sequences
// (colours, cursor moves, OSC titles and hyperlinks) are stripped, and a bare
// carriage return (progress bars) becomes a line break.

/* eslint-disable no-control-regex */
const OSC = /\x1b\][\s\S]*?(?:\x07|\x1b\\)/g
const CSI = /\x1b\[[0-?]*[ -/]*[@-~]/g
const OTHER_ESC = /\x1b[@-Z\\-_]|\x1b[()#][0-9A-Za-z]|\x9b[0-?]*[ -/]*[@-~]/g
const CONTROLS = /[\x00-\x08\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f]/g
const LONE_ESC = /\x1b/g

/** Cleans one line (without its trailing newline). */
export function sanitizeLine (line: string): string {
  return line
    .replace(OSC, '')
    .replace(CSI, '')
    .replace(OTHER_ESC, '')
    .replace(LONE_ESC, '')
    .replace(/\r+$/, '')
    .replace(/\r/g, '\n')
    .replace(CONTROLS, '')
}
