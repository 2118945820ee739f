# frozen_string_literal: true

# Hostile input: what an attacker-controlled byte string can and cannot do to a decoder.
# Shared by the spec/hostile_*_spec.rb files, one per topic:
#   hostile_limits_spec.rb         decoder limits (max_depth, max_*_len)
#   hostile_lying_headers_spec.rb  length headers that lie (memory and time bounds)
#   hostile_deep_nesting_spec.rb   deep nesting when decoding and packing
#   hostile_malformed_spec.rb      malformed input, truncation, timestamps, invalid UTF-8
#   hostile_state_after_error_spec.rb  the unpacker's state after an exception
#   hostile_reentrancy_spec.rb     ext procs using the unpacker or packer that called them
#
# Incidents in peer libraries these files guard against (docs/compatibility.md §15):
#   * a 5-byte header claiming 2^32-1 elements makes the decoder allocate gigabytes;
#   * nested array16(65535) headers turn 72 KB of input into 1.4 GB of preallocation;
#   * a map32 count near 2^32 overflows count*2 (the C gem reads df 80 00 00 01 as 1 entry);
#   * deep nesting overflows the native stack;
#   * an unpacker left broken after an error misbehaves on the next call;
#   * an ext callback that uses the unpacker (or packer) that called it.
#
# Limits (msgpack-rs options; the C gem has none of them, so those examples are skipped in
# the oracle run): max_depth (default 128, like the C gem; exceeding it raises
# MessagePack::StackError), max_array_len, max_map_len, max_str_len, max_bin_len,
# max_ext_len (default unlimited). A length above its limit raises MalformedFormatError
# (an UnpackError) whose message names the option, as soon as the header is read.
#
# Memory is measured in a child Ruby (VmHWM from /proc/self/status, reset through
# /proc/self/clear_refs just before the hostile call), so other examples don't pollute it.

require "json"

# Ruby code run in a child that loads the same msgpack; `measure { ... }` resets the
# high-water mark, runs the block and returns its outcome, the peak RSS growth (KiB) and
# the time taken.
HOSTILE_CHILD_PRELUDE = <<~'RUBY'
  require "msgpack"
  require "json"
  require "stringio"
  def bin(hex) = [hex.delete(" -")].pack("H*").b
  def hwm_kib = File.read("/proc/self/status")[/^VmHWM:\s+(\d+)/, 1].to_i
  def measure
    GC.start
    reset = begin
      File.write("/proc/self/clear_refs", "5") # high-water mark := current RSS
      true
    rescue SystemCallError
      false # the mark then includes the setup (small here); see measure_each
    end
    before = hwm_kib
    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    outcome = begin
      value = yield
      { "value" => value.class.name }
    rescue Exception => e
      { "error" => e.class.name, "message" => e.message }
    end
    outcome.merge("growth_kib" => hwm_kib - before, "hwm_reset" => reset,
                  "seconds" => Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0)
  end
  def report(result) = puts(JSON.generate(result))
RUBY

HOSTILE_ONE_MIB_KIB = 1024

# Included by every `RSpec.describe "Hostile input"` group of the hostile_*_spec.rb files.
module HostileHelpers
  # skip: metadata of the examples that use msgpack-rs options the C gem lacks.
  RS_ONLY = if defined?(MSGPACK_SPEC_ORACLE) && MSGPACK_SPEC_ORACLE
              "msgpack-rs only (the C gem has no decoder limits)"
            else
              false
            end

  def nested(count, header, leaf = "01")
    bin(header) * count + bin(leaf)
  end

  # Runs `code` after HOSTILE_CHILD_PRELUDE; returns the JSON object the child reported.
  def child_report(code)
    out, err, status = run_isolated_ruby(HOSTILE_CHILD_PRELUDE + code)
    expect(status).to be_success, "child failed (#{status.inspect}):\n#{err[0, 2000]}"
    JSON.parse(out.lines.last)
  end

  # Measures each snippet (a Ruby expression; `setup` runs first) in a child: all in one
  # child when the high-water mark can be reset between them, else one child each (an
  # earlier, bigger peak would otherwise hide a later one). Returns {name => report}.
  def measure_each(setup, snippets)
    batch = snippets.map { |name, code| "$results[#{name.inspect}] = measure { #{code} }" }.join("\n")
    results = child_report("#{setup}\n$results = {}\n#{batch}\nreport($results)\n")
    return results if results.each_value.all? { |v| v["hwm_reset"] }

    snippets.to_h { |name, code| [name, child_report("#{setup}\nreport(measure { #{code} })\n")] }
  end

  # Runs `code` in a child and returns [stdout, stderr, status] (for code that may crash).
  def child_run(code)
    run_isolated_ruby(HOSTILE_CHILD_PRELUDE + code)
  end

  def expect_no_crash(status, err)
    expect(err).not_to include("[BUG]")
    expect(status.signaled?).to be(false), "child killed by signal #{status.termsig}:\n#{err[0, 1500]}"
  end
end
