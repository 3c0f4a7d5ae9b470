#!/usr/bin/env bash
# Builds gpio-sim as an out-of-tree module for Debian kernel KVER. Debian's kernels have neither
# CONFIG_GPIO_SIM nor CONFIG_IRQ_SIM (the interrupt simulator gpio-sim needs for edge events), so
# drivers/gpio/gpio-sim.c and kernel/irq/irq_sim.c from Debian's own linux-source package are linked
# into one module, gpio-sim.ko, against linux-headers-KVER.
# Usage: build-gpio-sim.sh KVER OUT_DIR        (OUT_DIR/gpio-sim.ko)
set -Eeuo pipefail
kver=${1:?usage: build-gpio-sim.sh KVER OUT_DIR}
out=${2:?usage: build-gpio-sim.sh KVER OUT_DIR}
headers=/usr/src/linux-headers-$kver
series=$(sed -E 's/^([0-9]+\.[0-9]+).*/\1/' <<<"$kver")
tarball=/usr/src/linux-source-$series.tar.xz
[[ -d $headers ]] || { echo "missing $headers (apt-get install linux-headers-$kver)" >&2; exit 1; }
[[ -f $tarball ]] || { echo "missing $tarball (apt-get install linux-source-$series)" >&2; exit 1; }
for option in CONFIG_GPIO_SYSFS CONFIG_GPIO_CDEV CONFIG_GPIOLIB_IRQCHIP; do
  grep -q "^$option=y" "$headers/.config" || { echo "$kver lacks $option=y" >&2; exit 1; }
done
if grep -q '^CONFIG_GPIO_SIM=' "$headers/.config"; then
  echo "$kver already has CONFIG_GPIO_SIM; nothing to build" >&2
  exit 1
fi

mkdir -p -- "$out"
src=linux-source-$series
tar -xJf "$tarball" -C "$out" --strip-components=1 \
  "$src/drivers/gpio/gpio-sim.c" "$src/drivers/gpio/gpiolib.h" "$src/kernel/irq/irq_sim.c"
cp -- "$out/drivers/gpio/gpio-sim.c" "$out/drivers/gpio/gpiolib.h" "$out/kernel/irq/irq_sim.c" "$out/"
objs='gpio-sim-main.o'
mv -- "$out/gpio-sim.c" "$out/gpio-sim-main.c"
# irq_to_desc() is not exported to modules. The simulator's interrupts are mapped with
# handle_simple_irq, so generic_handle_irq() (exported) runs the very same handler.
sed -i 's/handle_simple_irq(irq_to_desc(irqnum));/generic_handle_irq(irqnum);/' "$out/irq_sim.c"
grep -q 'generic_handle_irq(irqnum);' "$out/irq_sim.c" || { echo "irq_sim.c: patch did not apply" >&2; exit 1; }
if ! grep -q '^CONFIG_IRQ_SIM=y' "$headers/.config"; then objs+=' irq_sim.o'; fi
printf 'obj-m := gpio-sim.o\ngpio-sim-y := %s\n' "$objs" >"$out/Kbuild"
timeout 600 nice -n 10 make -s -C "$headers" M="$out" modules
ls -l "$out/gpio-sim.ko"
