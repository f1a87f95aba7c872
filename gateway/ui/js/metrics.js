// The gateway's own Prometheus text (/metrics, no Prometheus needed), read into per-function
// figures: invocations by status code and the latency histogram. Two samples give rates; the
// latency quantiles come from the histogram buckets (over the window between the samples
// when there were calls in it, since the start otherwise), as Prometheus' histogram_quantile.

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses Prometheus text into [{name, labels, value}]. */
export function parse(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[3] || '').matchAll(LABEL)) labels[l[1]] = l[2].replace(/\\(.)/g, '$1');
    samples.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return samples;
}

/**
 * Per function (`name.namespace`): {calls (sync answered), errors (5xx), accepted (async
 * calls accepted), buckets: Map(le → count)}.
 */
export function byFunction(samples) {
  const out = new Map();
  const of = (fn) => {
    if (!out.has(fn)) out.set(fn, { calls: 0, errors: 0, accepted: 0, buckets: new Map() });
    return out.get(fn);
  };
  for (const s of samples) {
    const fn = s.labels.function_name;
    if (!fn) continue;
    if (s.name === 'gateway_function_invocation_total') {
      const f = of(fn);
      f.calls += s.value;
      if (Number(s.labels.code) >= 500) f.errors += s.value;
    } else if (s.name === 'gateway_async_submissions_total' && s.labels.outcome === 'accepted') {
      of(fn).accepted += s.value;
    } else if (s.name === 'gateway_functions_seconds_bucket') {
      const f = of(fn);
      const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
      f.buckets.set(le, (f.buckets.get(le) || 0) + s.value);
    }
  }
  return out;
}

/** The q-quantile of cumulative buckets (Map le → count), linear within a bucket. */
export function quantile(q, buckets) {
  const sorted = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  if (!sorted.length) return null;
  const total = sorted[sorted.length - 1][1];
  if (!total) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of sorted) {
    if (count >= rank) {
      if (le === Infinity) return prevLe;
      const inBucket = count - prevCount;
      return inBucket ? prevLe + (le - prevLe) * ((rank - prevCount) / inBucket) : le;
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}

function minus(now, before) {
  const out = new Map();
  for (const [le, count] of now) out.set(le, count - ((before && before.get(le)) || 0));
  return out;
}

/**
 * Figures of each function from two readings (`before` may be null): rate (calls/s over the
 * window), error share (5xx, over the window with calls in it, else overall), p50, p99.
 */
export function figures(now, before, elapsedSeconds) {
  const out = new Map();
  for (const [fn, f] of now) {
    const b = before && before.get(fn);
    const windowCalls = b ? f.calls - b.calls : 0;
    const recent = b && windowCalls > 0;
    const buckets = recent ? minus(f.buckets, b.buckets) : f.buckets;
    const calls = recent ? windowCalls : f.calls;
    const errors = recent ? f.errors - b.errors : f.errors;
    out.set(fn, {
      total: f.calls,
      accepted: f.accepted,
      rate: b && elapsedSeconds > 0 ? windowCalls / elapsedSeconds : null,
      errorShare: calls ? errors / calls : null,
      p50: quantile(0.5, buckets),
      p99: quantile(0.99, buckets),
    });
  }
  return out;
}
