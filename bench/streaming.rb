# frozen_string_literal: true

# msgpack-rs against the C msgpack gem beyond one-shot pack/unpack:
#
#   feed_each        Unpacker#feed_each over a stream of 4,000 log records (1.25 MB) split
#                    into 64 B, 4 KiB and 1 MiB chunks, and of 1,000 records in 1 B chunks
#                    (MB/s of stream)
#   IO               Packer.new(io) / Unpacker.new(io).each over a StringIO; a reused Packer
#   pack/unpack size sweep
#                    str and bin around the buffer's reference thresholds: 255/256 B
#                    (read_reference_threshold: unpack may share the source string from
#                    256 B) and 512 KiB-1/512 KiB+1 (write_reference_threshold: pack may
#                    append by reference from 512 KiB); the small sizes as arrays of 100
#   unpack options   records_1000 with key_cache: false/true, symbolize_keys: true,
#                    freeze: true (the C gem 1.4.2 has no key_cache and ignores it)
#   ext types        a Factory with a Struct registered through packer/unpacker procs,
#                    Time via MessagePack::Time::Packer/Unpacker, and MessagePack::Timestamp
#                    (each skipped where the loaded gem lacks it)
#   setup            Packer.new, Unpacker.new, Factory.new(.packer/.unpacker), and the
#                    fixed cost of one MessagePack.pack/unpack call
#
#   ruby bench/streaming.rb                  alternate C-gem / msgpack-rs children, print the tables
#   BENCH_FILTER='feed_each|setup' ruby bench/streaming.rb
#
# Every payload is also checked (round trip in each child, identical bytes and objects
# across implementations; for freeze: true every object must come back frozen).
# Harness, environment variables and exit status: bench/support/ab.rb.

require_relative "support/ab"
require_relative "support/payloads"

BenchPoint = Struct.new(:x, :y)

module StreamingBench
  module_function

  def chunks(bytes, size)
    (0...bytes.bytesize).step(size).map { |offset| bytes.byteslice(offset, size) }
  end

  def human(size)
    if size >= 1 << 20 && (size % (1 << 20)).zero? then "#{size >> 20} MiB"
    elsif size >= 1024 && (size % 1024).zero? then "#{size >> 10} KiB"
    else "#{size} B"
    end
  end

  def symbolize(obj)
    case obj
    when Hash then obj.to_h { |k, v| [k.to_sym, symbolize(v)] }
    when Array then obj.map { |v| symbolize(v) }
    else obj
    end
  end

  def deep_frozen?(obj)
    return false unless obj.nil? || obj.frozen?

    case obj
    when Hash then obj.all? { |k, v| deep_frozen?(k) && deep_frozen?(v) }
    when Array then obj.all? { |v| deep_frozen?(v) }
    else true
    end
  end

  # A str (valid UTF-8, ASCII content) or bin payload of exactly `size` bytes.
  def sized(kind, size, seed)
    if kind == "str"
      ("The quick brown fox jumps over the lazy dog #{seed}. " * ((size / 40) + 2)).byteslice(0, size)
                                                                                 .force_encoding(Encoding::UTF_8)
    else
      Random.new(seed).bytes(size)
    end
  end
end

AB.main(__FILE__, title: "streaming: feed_each, IO, size sweep, unpack options, ext types, setup") do |s|
  sb = StreamingBench

  # ---- Unpacker#feed_each by chunk size ------------------------------------------
  records = Payloads.records(4_000)
  stream = records.map { |r| MessagePack.pack(r) }.join
  # 1 B chunks over the first 1,000 records only (one String per byte is a big heap).
  short = records.first(1_000)
  short_stream = short.map { |r| MessagePack.pack(r) }.join
  s.section("feed_each (MB/s of the stream)") do
    s.check_result("stream_4000", MessagePack::Unpacker.new.tap { |u| u.feed(stream) }.each.to_a,
                   expect: records, packed: stream)
    [1, 64, 4 * 1024, 1 << 20].each do |size|
      recs, bytes = size == 1 ? [short, short_stream] : [records, stream]
      parts = sb.chunks(bytes, size)
      got = []
      unpacker = MessagePack::Unpacker.new
      parts.each { |part| unpacker.feed_each(part) { |obj| got << obj } }
      s.check_result("feed_each #{sb.human(size)}", got, expect: recs)
      label = "#{sb.human(size)} chunks, #{recs.size} records (#{bytes.bytesize / 1000} kB)"
      s.bench(label, <<~RUBY, bytes: bytes.bytesize, parts: parts)
        u = MessagePack::Unpacker.new
        parts.each { |part| u.feed_each(part) { |_obj| } }
      RUBY
    end
  end

  # ---- IO streaming ---------------------------------------------------------------
  require "stringio"
  recs1000 = records.first(1_000)
  stream1000 = recs1000.map { |r| MessagePack.pack(r) }.join
  s.section("IO (1,000 records)") do
    io = StringIO.new(+"".b)
    packer = MessagePack::Packer.new(io)
    recs1000.each { |r| packer.write(r) }
    packer.flush
    s.check_result("packer_io_1000", MessagePack::Unpacker.new(StringIO.new(io.string)).each.to_a,
                   expect: recs1000, packed: io.string)
    s.bench("Packer.new(io) write each + flush", <<~RUBY, recs: recs1000)
      pk = MessagePack::Packer.new(StringIO.new(+""))
      recs.each { |r| pk.write(r) }
      pk.flush
    RUBY

    reused = MessagePack::Packer.new
    recs1000.each { |r| reused.write(r) }
    s.check_result("packer_reused_1000", MessagePack::Unpacker.new.tap { |u| u.feed(reused.to_s) }.each.to_a,
                   expect: recs1000, packed: reused.to_s)
    reused.clear
    s.bench("reused Packer write each + to_s + clear", <<~RUBY, recs: recs1000, pk: reused)
      recs.each { |r| pk.write(r) }
      pk.to_s
      pk.clear
    RUBY

    s.bench("Unpacker.new(io).each", <<~RUBY, data: stream1000)
      MessagePack::Unpacker.new(StringIO.new(data)).each { |_obj| }
    RUBY
  end

  # ---- str/bin size sweep ---------------------------------------------------------
  sweep = {}
  %w[str bin].each do |kind|
    { 255 => "255 B x100", 256 => "256 B x100",
      (512 * 1024) - 1 => "512 KiB-1", (512 * 1024) + 1 => "512 KiB+1" }.each do |size, size_label|
      count = size < 1024 ? 100 : 1
      name = "#{kind} #{size_label}"
      obj = count == 1 ? sb.sized(kind, size, 1) : Array.new(count) { |i| sb.sized(kind, size, i) }
      sweep[name] = [obj, size * count]
    end
  end
  packed_sweep = {}
  s.section("pack size sweep") do
    sweep.each do |name, (obj, bytes)|
      packed_sweep[name] = s.check(name, obj)
      s.bench(name, "MessagePack.pack(obj)", bytes: bytes, obj: obj)
    end
  end
  s.section("unpack size sweep") do
    sweep.each do |name, (_obj, bytes)|
      next unless packed_sweep[name]

      s.bench(name, "MessagePack.unpack(data)", bytes: bytes, data: packed_sweep[name])
    end
  end

  # ---- unpack options -------------------------------------------------------------
  s.section("unpack options (records_1000)") do
    data = MessagePack.pack(recs1000)
    options = {
      "defaults" => {},
      "key_cache: false" => { key_cache: false },
      "key_cache: true" => { key_cache: true },
      "symbolize_keys: true" => { symbolize_keys: true },
      "freeze: true" => { freeze: true },
      "freeze + symbolize_keys + key_cache" => { freeze: true, symbolize_keys: true, key_cache: true },
    }
    options.each do |label, opts|
      s.guard("unpack #{label}") do
        result = MessagePack.unpack(data, opts)
        expect = opts[:symbolize_keys] ? sb.symbolize(recs1000) : recs1000
        s.check_result("unpack #{label}", result, expect: expect)
        s.error("unpack #{label}: result is not deeply frozen") if opts[:freeze] && !sb.deep_frozen?(result)
      end
      s.bench(label, "MessagePack.unpack(data, opts)", data: data, opts: opts)
    end
  end

  # ---- ext types through a Factory --------------------------------------------------
  ext_factory = nil
  s.section("ext types (1,000 objects)") do
    point_factory = MessagePack::Factory.new
    point_factory.register_type(1, BenchPoint,
                                packer: ->(pt) { [pt.x, pt.y].pack("q>q>") },
                                unpacker: ->(payload) { BenchPoint.new(*payload.unpack("q>q>")) })
    points = Array.new(1_000) { |i| BenchPoint.new(i * 1_000_003, -i) }
    ext_payloads = { "Struct via procs" => [point_factory, points] }

    if defined?(MessagePack::Time::Packer) && defined?(MessagePack::Timestamp)
      time_factory = MessagePack::Factory.new
      time_factory.register_type(-1, Time, packer: MessagePack::Time::Packer, unpacker: MessagePack::Time::Unpacker)
      # timestamp 32 (whole seconds), 64 (nsec, sec < 2**34) and 96 (sec >= 2**34 or < 0)
      times = Array.new(1_000) do |i|
        sec = [1_700_000_000 + (i * 3_600), (1 << 34) + i, -86_400 * i][i % 3]
        Time.at(sec, i % 4 == 0 ? 0 : (i * 7_654_321) % 1_000_000_000, :nanosecond)
      end
      ext_payloads["Time (MessagePack::Time)"] = [time_factory, times]

      ext_factory = MessagePack::Factory.new # for the setup section
      ext_factory.register_type(1, BenchPoint, packer: ->(pt) { [pt.x, pt.y].pack("q>q>") },
                                               unpacker: ->(payload) { BenchPoint.new(*payload.unpack("q>q>")) })
      ext_factory.register_type(-1, Time, packer: MessagePack::Time::Packer, unpacker: MessagePack::Time::Unpacker)
    else
      s.skip("Time (MessagePack::Time)", "no MessagePack::Time in #{MessagePack::VERSION}")
    end

    if defined?(MessagePack::Timestamp)
      ts_factory = MessagePack::Factory.new
      ts_factory.register_type(-1, MessagePack::Timestamp, packer: :to_msgpack_ext, unpacker: :from_msgpack_ext)
      stamps = Array.new(1_000) { |i| MessagePack::Timestamp.new(1_700_000_000 + i, (i * 999_983) % 1_000_000_000) }
      ext_payloads["MessagePack::Timestamp"] = [ts_factory, stamps]
    else
      s.skip("MessagePack::Timestamp", "no MessagePack::Timestamp in #{MessagePack::VERSION}")
    end

    ext_payloads.each do |label, (factory, objs)|
      data = s.check("ext #{label}", objs, pack: ->(o) { factory.dump(o) }, unpack: ->(b) { factory.load(b) })
      s.bench("pack #{label}", "factory.dump(objs)", factory: factory, objs: objs)
      s.bench("unpack #{label}", "factory.load(data)", factory: factory, data: data) if data
    end
  end

  # ---- setup cost -------------------------------------------------------------------
  s.section("setup") do
    s.bench("Packer.new", "MessagePack::Packer.new")
    s.bench("Unpacker.new", "MessagePack::Unpacker.new")
    s.bench("Factory.new", "MessagePack::Factory.new")
    s.bench("Factory.new.packer", "MessagePack::Factory.new.packer")
    s.bench("Factory.new.unpacker", "MessagePack::Factory.new.unpacker")
    if ext_factory
      s.bench("factory with 2 ext types: .packer", "f.packer", f: ext_factory)
      s.bench("factory with 2 ext types: .unpacker", "f.unpacker", f: ext_factory)
    end
    s.bench("MessagePack.pack(nil)", "MessagePack.pack(nil)")
    s.bench("MessagePack.unpack(\"\\xC0\")", "MessagePack.unpack(data)", data: "\xC0".b)
  end
end
