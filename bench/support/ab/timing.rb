# frozen_string_literal: true

# bench/support/ab: timing and statistics. AB.now / median / geomean, and AB::Timing, the
# calibrated batch timing a server child runs for one case (included into AB::Child).

module AB
  module_function

  def now
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  def median(values)
    sorted = values.sort
    mid = sorted.size / 2
    sorted.size.odd? ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2.0
  end

  def geomean(values)
    return nil if values.empty?

    Math.exp(values.sum { |x| Math.log(x) } / values.size)
  end

  # Timing of one case in one child: see "Timing" in bench/support/ab.rb.
  module Timing
    def measure(c)
      time = AB.env_f("BENCH_TIME")
      warmup = AB.env_f("BENCH_WARMUP")
      batch_time = time / [AB.env_i("BENCH_SAMPLES"), 1].max

      GC.start
      spent = 0.0
      c.n ||= begin
        # Calibrate (this also warms up): grow n until a batch takes about batch_time.
        n = 1
        loop do
          t = timed(c.runner, n)
          spent += t
          break if t >= batch_time * 0.5 || n >= 1 << 40

          n = t <= 0 ? n * 100 : (n * batch_time / t).ceil.clamp(n * 2, n * 100)
        end
        t = timed(c.runner, n)
        spent += t
        [(n * batch_time / [t, 1e-9].max).round, 1].max
      end
      n = c.n

      deadline = AB.now + [warmup - spent, 0].max
      timed(c.runner, n) while AB.now < deadline

      rates = []
      elapsed = 0.0
      gc_count = GC.count
      gc_ms = GC.stat(:time)
      while elapsed < time || rates.size < 3
        t = timed(c.runner, n)
        elapsed += t
        rates << n / t
        break if rates.size >= 3 && elapsed >= 3 * time # one op is slower than a batch
      end
      ops = n * rates.size
      { "ips" => AB.median(rates), "best" => rates.max, "n" => n, "batches" => rates.size,
        # GC runs per 1,000 operations, and milliseconds spent in GC per 1,000 operations.
        "gc_per_kop" => (GC.count - gc_count) * 1000.0 / ops,
        "gc_ms_per_kop" => (GC.stat(:time) - gc_ms) * 1000.0 / ops }
    end

    def timed(runner, n)
      t0 = AB.now
      runner.call(n)
      AB.now - t0
    end
  end
end
