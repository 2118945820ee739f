# frozen_string_literal: true

# Instructions per MessagePack.pack / MessagePack.unpack call on the eight shapes of
# bench/shapes.rb, counted by valgrind's callgrind: a deterministic measure for comparing
# two builds of msgpack-rs (a refactoring must not cost speed) where timings on a shared
# machine swing by 10% and more.
#
#   ruby bench/instructions.rb                    this checkout's lib/ (the built extension)
#   ruby bench/instructions.rb --lib DIR          another checkout's lib/
#   ruby bench/instructions.rb --compare A.json B.json    per shape: B/A - 1
#   BENCH_FILTER=unpack ruby bench/instructions.rb
#   INSTR_JSON=out.json ruby bench/instructions.rb        also write the counts as JSON
#
# Each shape runs in two child processes under callgrind, one doing N calls and one doing
# 2N (after the same warm-up); the difference divided by N is the cost of one call,
# without Ruby's start-up, the library's load and the payload's construction. GC work
# that the calls cause is included, as in real use. Needs valgrind (apt-get install
# valgrind).

require "json"
require "open3"
require "rbconfig"
require_relative "support/payloads"

module Instructions
  ROOT = File.expand_path("..", __dir__)

  # Calls per child: large shapes need fewer to dominate the run.
  CALLS = {
    "map1_str150" => 2000, "log_record" => 2000, "records_1000" => 20, "ints_10000" => 20,
    "floats_10000" => 20, "nested_200" => 20, "bin_1mib" => 20, "utf8_strings_2000" => 20,
  }.freeze

  CHILD = <<~'RUBY'
    require "msgpack"
    require ENV.fetch("INSTR_PAYLOADS")
    op, name, n = ARGV[0], ARGV[1], Integer(ARGV[2])
    obj = Payloads.shapes.fetch(name)
    data = MessagePack.pack(obj)
    20.times { op == "pack" ? MessagePack.pack(obj) : MessagePack.unpack(data) } # warm-up
    GC.start
    if op == "pack"
      n.times { MessagePack.pack(obj) }
    else
      n.times { MessagePack.unpack(data) }
    end
  RUBY

  module_function

  def count(lib, op, name, n)
    env = { "INSTR_PAYLOADS" => File.join(__dir__, "support", "payloads.rb"), "RUBYOPT" => nil }
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
           RbConfig.ruby, "-I", lib, "-e", CHILD, op, name, n.to_s]
    _out, err, status = Open3.capture3(env, *cmd)
    raise "#{op} #{name}: child failed:\n#{err[-2000..] || err}" unless status.success?

    collected = err[/Collected\s*:\s*(\d+)/, 1] or raise "#{op} #{name}: no count in:\n#{err}"
    Integer(collected)
  end

  def measure(lib, filter)
    results = {}
    %w[pack unpack].each do |op|
      Payloads.shapes.each_key do |name|
        key = "#{op} #{name}"
        next if filter && !key.include?(filter)

        n = CALLS.fetch(name)
        per_call = (count(lib, op, name, 2 * n) - count(lib, op, name, n)).fdiv(n)
        results[key] = per_call.round
        printf("%-26s %14s instructions/call\n", key, per_call.round.to_s.reverse.scan(/\d{1,3}/).join(",").reverse)
      end
    end
    results
  end

  def compare(a_path, b_path)
    a = JSON.parse(File.read(a_path))
    b = JSON.parse(File.read(b_path))
    worst = 0.0
    a.each do |key, before|
      after = b[key] or next
      change = after.fdiv(before) - 1
      worst = change if change.abs > worst.abs
      printf("%-26s %14d %14d %+7.2f%%\n", key, before, after, 100 * change)
    end
    printf("largest change: %+.2f%%\n", 100 * worst)
  end

  def main(argv)
    if argv.first == "--compare"
      compare(argv[1], argv[2])
      return
    end
    lib = argv.first == "--lib" ? File.expand_path(argv[1]) : File.join(ROOT, "lib")
    results = measure(lib, ENV["BENCH_FILTER"])
    File.write(ENV["INSTR_JSON"], JSON.pretty_generate(results)) if ENV["INSTR_JSON"]
  end
end

Instructions.main(ARGV) if $PROGRAM_NAME == __FILE__
