# frozen_string_literal: true

# Ractor safety: the module functions, Packer, Unpacker and Buffer used inside non-main
# Ractors (same bytes and values as in main), deep packing on a Ractor's smaller stack,
# Ractors working while main compacts the heap, and 4 Ractors doing 20,000 checked round
# trips each.
# Shared objects, workouts and helpers: spec/support/ractor_scenarios.rb.

# The C gem is not Ractor-safe (docs/compatibility.md §16): nothing to check in the
# oracle run.
return if defined?(MSGPACK_SPEC_ORACLE) && MSGPACK_SPEC_ORACLE

require "stringio"

RSpec.describe "Ractor safety", :ractor do
  include RactorSpecHelpers

  describe "module functions" do
    it "MessagePack.pack/unpack/dump/load give the same bytes and values as in main" do
      expected = MessagePack.pack(RactorSpec::RECORD)
      got = in_ractor do
        rec = RactorSpec::RECORD
        a = MessagePack.pack(rec)
        b = MessagePack.dump(rec)
        c = MessagePack.pack(rec, { compatibility_mode: true })
        io = StringIO.new(+"".b)
        MessagePack.pack(rec, io)
        [a, b, c, io.string, MessagePack.unpack(a), MessagePack.load(b), MessagePack.unpack(a, symbolize_keys: true),
         MessagePack.load(StringIO.new(a)), (MessagePack.unpack(a + "\xC0".b) rescue $!.class)]
      end
      rec = RactorSpec::RECORD
      expect(got).to eq([expected, expected, MessagePack.pack(rec, compatibility_mode: true), expected, rec, rec,
                         rec.transform_keys(&:to_sym).merge(meta: { retries: 0, shard: nil }), rec,
                         MessagePack::MalformedFormatError])
    end

    it "to_msgpack works on core classes, with no argument, a Packer and an IO" do
      got = in_ractor do
        objs = RactorSpec::CORE_OBJECTS
        plain = objs.map(&:to_msgpack)
        pk = MessagePack::Packer.new
        same = objs.all? { |o| o.to_msgpack(pk).equal?(pk) }
        io = StringIO.new(+"".b)
        objs.each { |o| o.to_msgpack(io) }
        [plain, same, pk.to_s, io.string]
      end
      expect(got[0]).to eq(RactorSpec::CORE_OBJECTS.map { |o| MessagePack.pack(o) })
      expect(got[1]).to be(true)
      expect(got[2]).to eq(got[0].join)
      expect(got[3]).to eq(got[0].join)
      expect(got[0][10]).to eq(bin("d5 07 70 6c"))
    end
  end

  describe "Packer, Unpacker and Buffer created inside a Ractor" do
    it "Packer write methods and full_pack match the main Ractor" do
      main = RactorSpec.packer_workout
      got = in_ractor { RactorSpec.packer_workout }
      expect(got).to eq(main)
      expect(got[0][0, 4]).to eq(bin("c0 c3 c2 d0"))
      expect(got[2]).to be(true)
    end

    it "Unpacker feed/feed_each/each/read/skip/skip_nil/read_*_header/buffer match the main Ractor" do
      input = RactorSpec::UNPACK_INPUT
      main = RactorSpec.unpacker_workout(input)
      got = in_ractor(input) { |data| RactorSpec.unpacker_workout(data) }
      expect(got).to eq(main)
      expect(got).to eq([2, 1, "str", true, nil, false, nil, 1, "k", "v", true, { z: [1, 2] }, true,
                         { z: [1, 2] }, true, 1, 2, :eof, [1, 2, 3], true, MessagePack::MalformedFormatError, 7])
    end

    it "Buffer <</write/read/read_all/skip/skip_all/to_a/to_s/clear match the main Ractor" do
      main = RactorSpec.buffer_workout
      got = in_ractor { RactorSpec.buffer_workout }
      expect(got).to eq(main)
      expect(got.first(8)).to eq([3, 10, "abcdefghij", "abcdefghij", "ab", 1, "def", false])
      expect(got.last(5)).to eq([200, 200, "", "", 0])
    end

    it "IO-backed Packer, Unpacker and Buffer over a StringIO made in the Ractor" do
      main = RactorSpec.io_workout
      got = in_ractor { RactorSpec.io_workout }
      expect(got).to eq(main)
      expect(got).to eq([102, [0, "s0", { "i" => 0 }], [99, "s99", { "i" => 99 }], true, "end",
                         [0, "s0", { "i" => 0 }], "\x93".b, "\x01\x02\x03".b, true])
    end

    it "Packer/Unpacker/Factory registrations with Ractor-local blocks and lambdas work in that Ractor" do
      got = in_ractor do
        pk = MessagePack::Packer.new
        pk.register_type(1, RactorSpec::Point) { |pt| [pt.x, pt.y].pack("l>l>") }
        uk = MessagePack::Unpacker.new
        uk.register_type(1) { |s| RactorSpec::Point.new(*s.unpack("l>l>")) }
        f = MessagePack::Factory.new
        f.register_type(1, RactorSpec::Point, packer: ->(pt) { [pt.x, pt.y].pack("l>l>") },
                                              unpacker: ->(s) { RactorSpec::Point.new(*s.unpack("l>l>")) })
        [uk.feed(pk.write(RactorSpec::Point.new(1, -2)).to_s).read, f.load(f.dump(RactorSpec::Point.new(5, 6)))]
      end
      expect(got).to eq([RactorSpec::Point.new(1, -2), RactorSpec::Point.new(5, 6)])
    end
  end

  it "packing Hashes nested deeper than a Ractor's stack allows raises SystemStackError, and the Ractor goes on" do
    r = Ractor.new do
      h = 1
      4000.times { h = { "a" => h, "b" => [1] } }
      err = begin
        MessagePack.pack(h)
        nil
      rescue SystemStackError => e
        e.class
      end
      [err, MessagePack.unpack(MessagePack.pack({ "x" => [1, 2.5, "s"] }))]
    end
    err, back = ractor_value(r)
    # Inside a Ractor the machine stack is smaller than the main thread's;
    # either way the walk must end in a clean exception or a full result.
    expect([nil, SystemStackError]).to include(err)
    expect(back).to eq({ "x" => [1, 2.5, "s"] })
  end

  it "Ractors keep working while the main Ractor compacts the heap" do
    ractors = 2.times.map do |i|
      Ractor.new(i) do |k|
        msg = MessagePack.pack(RactorSpec::RECORD.merge("big" => "b" * 700, "k" => k))
        bad = 0
        300.times do |j|
          u = MessagePack::Unpacker.new(symbolize_keys: j.odd?)
          cut = j % msg.bytesize
          u.feed(msg[0, cut])
          begin
            u.read
            bad += 1
          rescue EOFError
            nil
          end
          u.feed(msg[cut..])
          v = u.read
          bad += 1 unless v[j.odd? ? :k : "k"] == k
          io = StringIO.new(msg * 2)
          bad += 1 unless MessagePack::Unpacker.new(io, io_buffer_size: 1024).each.to_a.size == 2
          out = StringIO.new(+"".b)
          MessagePack::Packer.new(out).write("q" * 600_000).write(k).flush
          bad += 1 unless out.string.bytesize == 600_006
        end
        [k, bad]
      end
    end
    10.times { GC.compact }
    expect(ractors.map { |r| ractor_value(r) }.sort).to eq([[0, 0], [1, 0]])
  end

  it "4 Ractors do 20,000 pack/unpack round trips each concurrently, every result checked" do
    ractors = 4.times.map { |i| Ractor.new(i) { |k| RactorSpec.round_trip_loop(k, 20_000) } }
    expect(ractors.map { |r| ractor_value(r) }.sort).to eq([[0, 0], [1, 0], [2, 0], [3, 0]])
  end
end
