# frozen_string_literal: true

# Child processes for the reliability specs: crash cases (a signal or a "[BUG]" report
# must fail the example, not the run) and growth measurements, which need a fresh heap.
#
# GrowthHelpers::PRELUDE is plain Ruby prepended to every child script. It loads the
# same msgpack as the spec run (run_isolated_ruby: our lib, or the C gem in an oracle
# run) and defines Probe:
#
#   Probe.sample              GC.start twice (after Probe.scrub), then {"rss_kib", "symbols", "maps"}:
#                             VmRSS, Symbol.all_symbols.size, lines of /proc/self/maps
#   Probe.maps_naming(path)   lines of /proc/self/maps that map `path` (bytes compared)
#   Probe.gc_ms               milliseconds one GC.start takes
#   Probe.report(hash)        prints the hash as the child's last line (JSON)
#
# and child_json (below) runs a script and returns that hash. Growth is judged on
# samples taken after a warm-up (Ruby's own caches, fiber stacks and malloc arenas
# settle in the first iterations): see GrowthHelpers.flat?.
module GrowthHelpers
  PRELUDE = <<~'RUBY'
    require "msgpack"
    require "json"
    $stdout.sync = true
    module Probe
      module_function

      def rss_kib = File.read("/proc/self/status")[/^VmRSS:\s+(\d+)/, 1].to_i
      def symbols = Symbol.all_symbols.size
      def maps = File.foreach("/proc/self/maps").count

      def maps_naming(path)
        needle = path.to_s.b
        File.foreach("/proc/self/maps", mode: "rb").count { |line| line.include?(needle) }
      end

      def gc_ms
        t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
        GC.start
        (Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0) * 1000.0
      end

      # Overwrites stale machine-stack slots (Ruby's GC scans the C stack conservatively,
      # so a pointer left there by the last operation can keep its result alive).
      def scrub(depth = 300) = depth.zero? ? 0 : scrub(depth - 1) + 1

      def sample
        scrub
        GC.start
        GC.start
        { "rss_kib" => rss_kib, "symbols" => symbols, "maps" => maps }
      end

      def report(hash) = puts(JSON.generate(hash))
    end
  RUBY

  module_function

  # True when the last value is within `tolerance` of the first (absolute units).
  def flat?(values, tolerance)
    (values.last - values.first) <= tolerance
  end
end

module GrowthSpecHelpers
  # Runs PRELUDE + code in a child; fails the example on a crash or a non-zero exit;
  # returns the JSON object of the child's last line.
  def child_json(code)
    require "json"
    out, err, status = run_isolated_ruby(GrowthHelpers::PRELUDE + code)
    expect_clean_exit(status, err)
    line = out.lines.last
    expect(line).not_to be_nil, "child printed nothing:\n#{err[0, 1500]}"
    JSON.parse(line)
  end

  # Runs PRELUDE + code; returns [stdout, stderr, status] (for outcomes checked by hand).
  def child_script_run(code)
    run_isolated_ruby(GrowthHelpers::PRELUDE + code)
  end

  def expect_clean_exit(status, err)
    expect(err).not_to include("[BUG]"), "child crashed:\n#{err[0, 1500]}"
    expect(status.signaled?).to be(false), "child killed by signal #{status.termsig}:\n#{err[0, 1500]}"
    expect(status.success?).to be(true), "child failed (#{status.inspect}):\n#{err[0, 1500]}"
  end
end

RSpec.configure { |config| config.include GrowthSpecHelpers } if defined?(RSpec) && RSpec.respond_to?(:configure)
