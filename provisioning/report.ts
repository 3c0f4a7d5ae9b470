// The self-test's results for people: a summary on the terminal, and a short install report in
// Markdown that the technician files with the installation record.
import { type CheckResult, type SelfTestReport, symbol } from './selftest.js';

function counts(checks: CheckResult[]): string {
  const of = (status: CheckResult['status']) => checks.filter((check) => check.status === status).length;
  const parts = [`${of('pass')} passed`, `${of('fail')} failed`];
  if (of('not-confirmed') > 0) parts.push(`${of('not-confirmed')} not confirmed`);
  if (of('skipped') > 0) parts.push(`${of('skipped')} skipped`);
  return parts.join(', ');
}

export function verdict(report: SelfTestReport): string {
  if (!report.ok)
    return 'FAILED: fix what is marked ✗ FAIL (the arrow says how) and run the self-test again.';
  if (report.checks.some((check) => check.status === 'not-confirmed'))
    return 'No failures, but not everything was confirmed by a person: run interactively to confirm the LED.';
  return 'ALL CHECKS PASSED: the camera is ready for service.';
}

export function formatSummary(report: SelfTestReport): string {
  const width = Math.max(...report.checks.map((check) => check.title.length));
  const lines = report.checks.map((check) => {
    const head = `${symbol(check.status).padEnd(15)} ${check.title.padEnd(width)}  ${check.detail}`;
    return check.remedy && check.status !== 'pass' ? `${head}\n${' '.repeat(16)}→ ${check.remedy}` : head;
  });
  return [
    '',
    `Self-test of ${report.deviceId ?? '(unknown device)'} at ${report.at}: ${counts(report.checks)}`,
    ...lines,
    '',
    verdict(report),
    '',
  ].join('\n');
}

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function formatMarkdownReport(report: SelfTestReport): string {
  return [
    `# Install report: ${report.deviceId ?? '(unknown device)'}`,
    '',
    `- Device id: ${report.deviceId ?? '(configuration invalid)'}`,
    `- Date: ${report.at}`,
    `- Technician: ${report.technician ?? '(not given: use --technician NAME)'}`,
    `- Result: ${report.ok ? 'PASSED' : 'FAILED'} (${counts(report.checks)})`,
    '',
    '| Check | Result | Detail | What to do |',
    '| --- | --- | --- | --- |',
    ...report.checks.map(
      (check) =>
        `| ${cell(check.title)} | ${check.status} | ${cell(check.detail)} | ${cell(check.status === 'pass' ? '' : (check.remedy ?? ''))} |`,
    ),
    '',
    verdict(report),
    '',
    'The resident was shown the privacy button and the viewing LED: ☐ yes',
    '',
  ].join('\n');
}
