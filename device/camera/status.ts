// The latest camera-controls report, as health needs it: the `camera-controls` fault (a required
// control did not take) and the warnings. Fed by the media process after every camera open.
import { EventEmitter } from 'node:events';
import type { ControlsReport } from './controls.js';

export interface CameraControlsStatusEvents {
  /** The fault or the warnings changed. */
  change: [];
}

export class CameraControlsStatus extends EventEmitter<CameraControlsStatusEvents> {
  #last: ControlsReport | undefined;

  get last(): ControlsReport | undefined {
    return this.#last;
  }

  /** A required control could not be set at the latest camera open. */
  get fault(): boolean {
    return (this.#last?.failedRequired.length ?? 0) > 0;
  }

  /** One short text per control that is not as configured (`gain: missing`). */
  get warnings(): string[] {
    return this.#last?.warnings ?? [];
  }

  update(report: ControlsReport): void {
    const before = JSON.stringify([this.fault, this.warnings]);
    this.#last = report;
    if (JSON.stringify([this.fault, this.warnings]) !== before) this.emit('change');
  }
}
