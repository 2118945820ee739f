# frozen_string_literal: true

# bench/support/ab: constants, the entry point AB.main and the environment knobs.
# (Documentation of the whole harness: bench/support/ab.rb.)

require "json"
require "digest"
require "rbconfig"
require "open3"

module AB
  REPO_ROOT = File.expand_path("../../..", __dir__)
  REPO_LIB = File.join(REPO_ROOT, "lib")
  OURS = "msgpack-rs"
  C_GEM = "C"
  READY_MARK = "AB-READY "
  RESULT_MARK = "AB-RESULT "
  DEFAULTS = { "BENCH_ROUNDS" => 4, "BENCH_TIME" => 0.5, "BENCH_WARMUP" => 0.15, "BENCH_SAMPLES" => 10 }.freeze

  module_function

  # gc: true (or BENCH_GC=1) adds GC columns: GC runs and milliseconds spent in GC per
  # 1,000 operations, for each implementation (median across rounds).
  def main(script, title:, gc: false, &define)
    if ARGV.include?("--serve")
      Child.new(define).serve
    elsif (i = ARGV.index("--dump"))
      Child.new(define).dump(ARGV.fetch(i + 1))
    elsif ARGV.include?("--list")
      Child.new(define).list
    else
      exit(Parent.new(script, title, gc: gc || ENV["BENCH_GC"] == "1").run)
    end
  end

  def env_f(name)
    Float(ENV.fetch(name, DEFAULTS.fetch(name).to_s))
  end

  def env_i(name)
    Integer(ENV.fetch(name, DEFAULTS.fetch(name).to_s))
  end
end
