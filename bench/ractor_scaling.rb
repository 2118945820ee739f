# frozen_string_literal: true

# Ractor scaling: the same per-Ractor work (N pack+unpack round trips of an
# 11-field log record) run by 1, 2 and 4 Ractors at once. Each Ractor does the
# same amount of work, so perfect scaling keeps the wall time flat while the
# number of Ractors is <= the number of cores; ops/s counts round trips.
#
#   ruby -I lib bench/ractor_scaling.rb              # N=100000, best of 3
#   N=50000 REPEAT=5 ruby -I lib bench/ractor_scaling.rb
#
# Besides msgpack it times two pure-Ruby control loops (the same harness):
#   - "cpu only": integer arithmetic, no allocation: the machine's own ceiling;
#   - "alloc only": builds a Hash of 11 Strings/values per iteration, about what
#     one unpack allocates: shows how much of any shortfall is the Ruby VM
#     (object allocation and the stop-the-world GC, which needs every Ractor at
#     a barrier) rather than this library.
# Also reported per run: process CPU time (all Ractors) and CPU time per op, so a
# busy machine (other processes taking the cores) shows up as CPU s < Ractors x
# wall s, while contention inside Ruby shows up as a rising CPU us/op; and GC time
# and counts (GC.stat(:time), Ruby >= 3.1); "idle %" is the whole machine's idle
# CPU during the run (/proc/stat): CPU s < Ractors x wall s with idle > 0 means our
# Ractors waited on each other, with idle ~0 that other processes had the cores.
# Best of REPEAT runs by ops/s.

require "msgpack"
require "etc"

Warning[:experimental] = false if Warning.respond_to?(:[]=)

module RactorScaling
  RECORD = Ractor.make_shareable({
    "id" => 123_456_789, "ts" => 1_700_000_000.123, "level" => "info", "host" => "web-01.example.com",
    "path" => "/api/v1/items/42", "status" => 200, "bytes" => 51_234, "cached" => false,
    "ua" => "Mozilla/5.0 (X11; Linux x86_64)", "tags" => ["edge", "eu-west"],
    "timing" => { "db" => 1.25, "view" => 3.5 },
  })

  # A Ractor's block value: Ractor#value on Ruby 3.5+ (which removed #take), #take before.
  def self.value(ractor) = ractor.respond_to?(:value) ? ractor.value : ractor.take

  WORKLOADS = {
    # The module API: a new Packer/Unpacker per call from DefaultFactory.
    "MessagePack.pack + unpack" => :module_api,
    # One Packer and one Unpacker reused by each Ractor.
    "reused Packer + Unpacker" => :reused,
    "cpu only (control)" => :cpu_only,
    "alloc only (control)" => :alloc_only,
  }.freeze

  def self.run(kind, n)
    case kind
    when :module_api
      n.times do
        back = MessagePack.unpack(MessagePack.pack(RECORD))
        raise "bad round trip" unless back["id"] == 123_456_789
      end
    when :reused
      pk = MessagePack::Packer.new
      uk = MessagePack::Unpacker.new
      n.times do
        pk.write(RECORD)
        uk.feed(pk.full_pack)
        raise "bad round trip" unless uk.read["id"] == 123_456_789
      end
    when :cpu_only
      x = 0
      (n * 40).times { |i| x = (x + i * 7) & 0xFFFF }
      x
    when :alloc_only
      n.times do |i|
        h = { "id" => i, "a" => "s#{i}", "b" => "t", "c" => "u", "d" => "v", "e" => 1.5, "f" => [i, i],
              "g" => { "x" => "y" }, "h" => "w", "i" => nil, "j" => "z" }
        raise "unreachable" if h.size != 11
      end
    end
    n
  end

  # [busy, idle] jiffies of the whole machine (Linux), to tell "other processes
  # had the cores" from "our Ractors waited on each other".
  def self.machine_jiffies
    f = File.read("/proc/stat").lines.first.split.drop(1).map(&:to_i)
    idle = f[3] + f[4].to_i
    [f.sum - idle, idle]
  rescue SystemCallError
    nil
  end

  # Wall time for `ractors` Ractors each doing `n` iterations of `kind`.
  def self.measure(kind, ractors, n)
    GC.start
    gc_time = GC.stat(:time)
    gc_count = GC.count
    j0 = machine_jiffies
    cpu0 = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID)
    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    rs = Array.new(ractors) { Ractor.new(kind, n) { |k, m| RactorScaling.run(k, m) } }
    done = rs.sum { |r| RactorScaling.value(r) }
    wall = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0
    cpu = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID) - cpu0
    j1 = machine_jiffies
    raise "lost work" unless done == ractors * n

    idle = j0 && j1 ? (j1[1] - j0[1]).fdiv((j1[0] - j0[0]) + (j1[1] - j0[1])) : Float::NAN
    { wall: wall, ops: done / wall, cpu: cpu, cpu_us: cpu / done * 1e6, idle: idle * 100,
      gc_ms: GC.stat(:time) - gc_time, gcs: GC.count - gc_count }
  end
end

n = Integer(ENV.fetch("N", "100000"))
repeat = Integer(ENV.fetch("REPEAT", "3"))
counts = ENV.fetch("RACTORS", "1,2,4").split(",").map { |s| Integer(s) }

puts "ruby #{RUBY_VERSION}, msgpack-rs #{MessagePack::VERSION}, #{Etc.nprocessors} CPUs, " \
     "N=#{n} per Ractor, best of #{repeat}"
puts "Record: #{MessagePack.pack(RactorScaling::RECORD).bytesize} bytes, #{RactorScaling::RECORD.size} fields"

# Warm up: load everything, touch the code paths in the main Ractor and in a Ractor.
RactorScaling::WORKLOADS.each_value { |kind| RactorScaling.run(kind, 2_000) }
RactorScaling.value(Ractor.new { RactorScaling.run(:module_api, 2_000) })

RactorScaling::WORKLOADS.each do |label, kind|
  puts
  puts label
  puts format("  %-8s %8s %11s %8s %8s %9s %8s %5s %7s", "Ractors", "wall s", "ops/s", "speedup", "CPU s",
              "CPU us/op", "GC ms", "GCs", "idle %")
  base = nil
  counts.each do |k|
    best = Array.new(repeat) { RactorScaling.measure(kind, k, n) }.max_by { |r| r[:ops] }
    base ||= best[:ops]
    puts format("  %-8d %8.3f %11.0f %7.2fx %8.2f %9.2f %8d %5d %7.0f", k, best[:wall], best[:ops], best[:ops] / base,
                best[:cpu], best[:cpu_us], best[:gc_ms], best[:gcs], best[:idle])
  end
end
