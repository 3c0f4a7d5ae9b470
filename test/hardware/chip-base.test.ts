import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolveMainChip, sysfsNumber } from '../../device/hardware/chip-base.js';

type ChipFiles = { label?: string; base?: string; ngpio?: string };

let root: string;

async function sysfs(chips: Record<string, ChipFiles>): Promise<string> {
  // A real /sys/class/gpio also holds export/unexport files; they must be ignored.
  await writeFile(join(root, 'export'), '');
  await writeFile(join(root, 'unexport'), '');
  for (const [name, files] of Object.entries(chips)) {
    await mkdir(join(root, name));
    for (const [file, text] of Object.entries(files)) await writeFile(join(root, name, file), `${text}\n`);
  }
  return root;
}

const chip = (label: string, base: number, ngpio: number): ChipFiles => ({
  label,
  base: String(base),
  ngpio: String(ngpio),
});

describe('resolveMainChip', () => {
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'sysfs-gpio-'));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('finds base 0 on a Pi 3 with an older kernel', async () => {
    const sysfsRoot = await sysfs({
      gpiochip0: chip('pinctrl-bcm2835', 0, 54),
      gpiochip504: chip('raspberrypi-exp-gpio', 504, 8),
    });
    await expect(resolveMainChip({ sysfsRoot })).resolves.toMatchObject({ name: 'gpiochip0', base: 0 });
  });

  it('finds base 512 on a Pi 4 with kernel 6.6', async () => {
    const sysfsRoot = await sysfs({
      gpiochip512: chip('pinctrl-bcm2711', 512, 58),
      gpiochip570: chip('raspberrypi-exp-gpio', 570, 8),
    });
    await expect(resolveMainChip({ sysfsRoot })).resolves.toMatchObject({
      base: 512,
      label: 'pinctrl-bcm2711',
    });
  });

  it('finds the RP1 controller at base 571 on a Pi 5 among the other chips', async () => {
    const sysfsRoot = await sysfs({
      gpiochip512: chip('gpio-brcmstb@107d508500', 512, 32),
      gpiochip544: chip('gpio-brcmstb@107d508520', 544, 4),
      gpiochip548: chip('gpio-brcmstb@107d517c00', 548, 17),
      gpiochip565: chip('gpio-brcmstb@107d517c20', 565, 6),
      gpiochip571: chip('pinctrl-rp1', 571, 54),
    });
    await expect(resolveMainChip({ sysfsRoot })).resolves.toMatchObject({ name: 'gpiochip571', base: 571 });
  });

  it('lets a configured chipLabel win over the built-in labels', async () => {
    const sysfsRoot = await sysfs({
      gpiochip512: chip('pinctrl-bcm2711', 512, 58),
      gpiochip570: chip('raspberrypi-exp-gpio', 570, 8),
    });
    await expect(resolveMainChip({ sysfsRoot, chipLabel: 'raspberrypi-exp-gpio' })).resolves.toMatchObject({
      base: 570,
    });
  });

  it('passes over a chip with a main-controller label but too few lines', async () => {
    const sysfsRoot = await sysfs({
      gpiochip0: chip('pinctrl-bcm2835', 0, 54),
      gpiochip100: chip('pinctrl-bcm2835', 100, 8),
    });
    await expect(resolveMainChip({ sysfsRoot })).resolves.toMatchObject({ base: 0 });
  });

  it('refuses to guess between several candidates', async () => {
    const sysfsRoot = await sysfs({
      gpiochip0: chip('pinctrl-bcm2835', 0, 54),
      gpiochip512: chip('pinctrl-bcm2711', 512, 58),
    });
    await expect(resolveMainChip({ sysfsRoot })).rejects.toThrow(
      /several candidates: gpiochip0 \(pinctrl-bcm2835, base 0, 54 lines\), gpiochip512/,
    );
  });

  it('says no gpiochip was found when the directory is missing', async () => {
    const sysfsRoot = join(root, 'missing');
    await expect(resolveMainChip({ sysfsRoot })).rejects.toThrow(`no gpiochip found under ${sysfsRoot}`);
  });

  it('says no gpiochip was found and lists what is there when no label matches', async () => {
    const sysfsRoot = await sysfs({ gpiochip570: chip('raspberrypi-exp-gpio', 570, 8) });
    await expect(resolveMainChip({ sysfsRoot })).rejects.toThrow(
      /no gpiochip found under .* with label .*; present: gpiochip570 \(raspberrypi-exp-gpio/,
    );
  });

  it('reports a garbage base on the main controller', async () => {
    const sysfsRoot = await sysfs({ gpiochip512: { label: 'pinctrl-bcm2711', base: 'abc', ngpio: '58' } });
    await expect(resolveMainChip({ sysfsRoot })).rejects.toThrow(
      /gpiochip512: base is not a number: "abc\\n"/,
    );
  });

  it('reports an unreadable base on the main controller', async () => {
    const sysfsRoot = await sysfs({ gpiochip512: { label: 'pinctrl-bcm2711', ngpio: '58' } });
    await expect(resolveMainChip({ sysfsRoot })).rejects.toThrow(/gpiochip512: ENOENT/);
  });

  it('ignores an unreadable chip that is not the main controller', async () => {
    const sysfsRoot = await sysfs({
      gpiochip512: chip('pinctrl-bcm2711', 512, 58),
      gpiochip570: { label: 'raspberrypi-exp-gpio', base: '', ngpio: '8' },
      gpiochip600: {},
    });
    await expect(resolveMainChip({ sysfsRoot })).resolves.toMatchObject({ base: 512 });
  });
});

describe('sysfsNumber', () => {
  const pi4 = { name: 'gpiochip512', label: 'pinctrl-bcm2711', base: 512, ngpio: 58 };

  it('adds the chip base to the BCM pin number', () => {
    expect(sysfsNumber(pi4, 17)).toBe(529);
  });

  it('rejects a pin the chip does not have', () => {
    expect(() => sysfsNumber(pi4, 58)).toThrow(/pin 58 is not on gpiochip512/);
    expect(() => sysfsNumber(pi4, -1)).toThrow();
  });
});
