# frozen_string_literal: true

# Small messages before and after one big one, as a log shipper formats them: an event
# whose time object packs itself through a Ruby `to_msgpack`, next to an occasional
# multi-megabyte chunk. A packer that sized or kept its buffers from the big message
# would make every later small call allocate (and collect) megabytes. 300,000 live
# Strings make each GC cost what it costs in a real process.
#
#   ruby bench/cliff.rb                 alternate C-gem / msgpack-rs children (bench/support/ab.rb)
#
# Compare each "after" row with its "before" row, and the GC/1k columns.

require_relative "support/ab"

AB.main(__FILE__, title: "small messages before / after one big message, ops/s", gc: true) do |s|
  event_time = Class.new do
    def initialize(sec) = @sec = sec
    def to_msgpack(packer = nil) = @sec.to_msgpack(packer)
  end
  live = Array.new(300_000) { |i| "r#{i}" }
  t = event_time.new(1_700_000_000)
  event = [t, { "msg" => "hello", "host" => "web-1" }]
  plain = [1_700_000_000, { "msg" => "hello", "host" => "web-1" }]
  s.check("event", plain)

  [["8 MB", 8_000_000], ["64 MB", 64_000_000]].each do |label, size|
    s.section("to_msgpack with a callback, #{label} message between") do
      big = nil
      s.bench("before") { |n| n.times { event.to_msgpack } }
      s.bench("after") do |n|
        big ||= ["fwd", "x".b * size, t].to_msgpack.bytesize
        n.times { event.to_msgpack }
      end
    end
    s.section("MessagePack.pack without callbacks, #{label} message between") do
      big = nil
      s.bench("before") { |n| n.times { MessagePack.pack(plain) } }
      s.bench("after") do |n|
        big ||= MessagePack.pack(["fwd", "x".b * size]).bytesize
        n.times { MessagePack.pack(plain) }
      end
    end
  end
  live.size
end
