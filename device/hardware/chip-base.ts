// Finds the sysfs GPIO number base of the Pi's main GPIO controller. Since kernel 6.6 Raspberry Pi OS
// no longer puts the main controller at base 0 (512 on a Pi 4, 571 on a Pi 5 today), so BCM pin N is
// sysfs GPIO base+N. Reading the base at startup keeps the pin config in BCM numbers on every model.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

export const DEFAULT_SYSFS_ROOT = '/sys/class/gpio';

/** Labels of the SoC GPIO controller: Pi 0–3 (bcm2835), Pi 4 (bcm2711), Pi 5 (the RP1 southbridge). */
export const MAIN_CHIP_LABELS: readonly string[] = ['pinctrl-bcm2835', 'pinctrl-bcm2711', 'pinctrl-rp1'];

/** The header pins are BCM 0–27; smaller chips with a matching label cannot be the main controller. */
export const MIN_MAIN_CHIP_LINES = 28;

export interface GpioChip {
  /** Directory name, e.g. `gpiochip512`. */
  name: string;
  label: string;
  base: number;
  ngpio: number;
}

/** A chip directory whose files could not be read or parsed; `label` is set if it at least had one. */
export interface UnreadableChip {
  name: string;
  label: string | undefined;
  reason: string;
}

export interface ChipScan {
  chips: GpioChip[];
  unreadable: UnreadableChip[];
}

export type ChipChoice = { ok: true; chip: GpioChip } | { ok: false; reason: string };

const describe = (chip: GpioChip): string =>
  `${chip.name} (${chip.label}, base ${chip.base}, ${chip.ngpio} lines)`;

/** Pure: picks the main controller from a scan. `chipLabel` (from config) overrides the known labels. */
export function pickMainChip(scan: ChipScan, root: string, chipLabel?: string): ChipChoice {
  const wanted = chipLabel === undefined ? MAIN_CHIP_LABELS : [chipLabel];
  const broken = scan.unreadable.filter((c) => c.label !== undefined && wanted.includes(c.label));
  if (broken.length > 0) {
    return { ok: false, reason: broken.map((c) => `${join(root, c.name)}: ${c.reason}`).join('; ') };
  }
  const labelled = scan.chips.filter((c) => wanted.includes(c.label));
  // An explicit label is the operator's decision; the line-count guard only protects the guess.
  const candidates =
    chipLabel === undefined ? labelled.filter((c) => c.ngpio >= MIN_MAIN_CHIP_LINES) : labelled;
  const [first, ...rest] = candidates;
  if (first === undefined) {
    const seen = [...scan.chips.map(describe), ...scan.unreadable.map((c) => `${c.name} (${c.reason})`)];
    return {
      ok: false,
      reason:
        `no gpiochip found under ${root} with label ${wanted.join(' or ')}` +
        (seen.length > 0 ? `; present: ${seen.join(', ')}` : ''),
    };
  }
  if (rest.length > 0) {
    return {
      ok: false,
      reason: `several candidates: ${candidates.map(describe).join(', ')} in ${root}; set chipLabel in config`,
    };
  }
  return { ok: true, chip: first };
}

function parseCount(text: string): number | undefined {
  const trimmed = text.trim();
  return /^\d+$/.test(trimmed) ? Number(trimmed) : undefined;
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

async function readChip(root: string, name: string): Promise<GpioChip | UnreadableChip> {
  const dir = join(root, name);
  let label: string | undefined;
  try {
    label = (await readFile(join(dir, 'label'), 'utf8')).trim();
    const baseText = await readFile(join(dir, 'base'), 'utf8');
    const ngpioText = await readFile(join(dir, 'ngpio'), 'utf8');
    const base = parseCount(baseText);
    const ngpio = parseCount(ngpioText);
    if (base === undefined)
      return { name, label, reason: `base is not a number: ${JSON.stringify(baseText)}` };
    if (ngpio === undefined)
      return { name, label, reason: `ngpio is not a number: ${JSON.stringify(ngpioText)}` };
    return { name, label, base, ngpio };
  } catch (err) {
    return { name, label, reason: errorText(err) };
  }
}

/** Reads every `gpiochip*` under `root`. Rejects only if `root` itself cannot be listed. */
export async function scanChips(root: string): Promise<ChipScan> {
  let entries: string[];
  try {
    entries = await readdir(root);
  } catch (err) {
    throw new Error(`no gpiochip found under ${root}: ${errorText(err)}`);
  }
  const scan: ChipScan = { chips: [], unreadable: [] };
  for (const name of entries.filter((e) => /^gpiochip\d+$/.test(e)).sort()) {
    const chip = await readChip(root, name);
    if ('reason' in chip) scan.unreadable.push(chip);
    else scan.chips.push(chip);
  }
  return scan;
}

export interface ChipBaseOptions {
  sysfsRoot?: string | undefined;
  chipLabel?: string | undefined;
}

/** Resolves the main controller; rejects with a message naming the directory and what was found. */
export async function resolveMainChip(options: ChipBaseOptions = {}): Promise<GpioChip> {
  const root = options.sysfsRoot ?? DEFAULT_SYSFS_ROOT;
  const choice = pickMainChip(await scanChips(root), root, options.chipLabel);
  if (!choice.ok) throw new Error(choice.reason);
  return choice.chip;
}

/** Maps a BCM pin number to its sysfs GPIO number; rejects pins the chip does not have. */
export function sysfsNumber(chip: GpioChip, bcmPin: number): number {
  if (!Number.isInteger(bcmPin) || bcmPin < 0 || bcmPin >= chip.ngpio) {
    throw new Error(`pin ${bcmPin} is not on ${chip.name} (${chip.label}, ${chip.ngpio} lines)`);
  }
  return chip.base + bcmPin;
}
