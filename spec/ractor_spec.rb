# frozen_string_literal: true

# Ractor safety: every scenario runs inside non-main Ractors and checks its
# results. Results come back through ractor_value (spec/support/ractor.rb):
# Ractor#value on Ruby 3.5+, Ractor#take on 3.1-3.4; a Ractor that has several
# values to report returns them as an Array from its block.
#
# A Ractor that is expected to raise sets Thread.current.report_on_exception =
# false first, so that Ruby does not print "terminated with exception" into the
# test output.
#
# Ractor.new blocks cannot see the example's locals or helpers, so shared work
# lives in module RactorSpec (also run in main for differential checks).
#
# GLOBAL STATE: nothing here touches MessagePack::DefaultFactory in this process.
# Registrations on DefaultFactory cannot be removed (there is no unregister API,
# as in the C gem) and other specs decode arbitrary ext ids with MessagePack.unpack,
# so the DefaultFactory scenarios (ext types 100..103) run in a child process.
#
# `require` inside a non-main Ractor does not work on Ruby 3.1 with RubyGems
# loaded (Kernel::RUBYGEMS_ACTIVATION_MONITOR is not shareable), so
# msgpack/bigint is required here, in the main Ractor.

# The C gem is not Ractor-safe (docs/compatibility.md §16): nothing to check in the
# oracle run.
return if defined?(MSGPACK_SPEC_ORACLE) && MSGPACK_SPEC_ORACLE

require "msgpack/bigint"
require "stringio"

Warning[:experimental] = false if Warning.respond_to?(:[]=)

module RactorSpec
  # A realistic log record (11 fields).
  RECORD = Ractor.make_shareable({
    "id" => 123_456, "ts" => 1_700_000_000.25, "level" => "info", "host" => "web-01.example",
    "path" => "/api/v1/items", "status" => 200, "bytes" => 51_234, "ok" => true, "ua" => "curl/8.0",
    "tags" => ["a", "b", "c"], "meta" => { "retries" => 0, "shard" => nil },
  })

  CORE_OBJECTS = Ractor.make_shareable([nil, true, false, 1, -2**40, 1.5, "str", :sym, [1, "a"], { "k" => [nil] },
                                         MessagePack::ExtensionValue.new(7, "pl")])

  # Ext classes. The pack/unpack callables below are defined in this module body,
  # so their self is the (shareable) module and they can be made shareable.
  Point = Struct.new(:x, :y) do
    def to_msgpack_ext = [x, y].pack("l>l>")
    def self.from_msgpack_ext(data) = new(*data.unpack("l>l>"))
  end

  class ShareableExt # DefaultFactory type 100: shareable procs
    attr_reader :v
    def initialize(v) = @v = v
    def ==(other) = other.is_a?(ShareableExt) && other.v == v
  end

  class SymbolExt < ShareableExt # DefaultFactory type 101: method names
    def to_msgpack_ext = [v].pack("N")
    def self.from_msgpack_ext(data) = new(data.unpack1("N"))
  end

  PACK_POINT = Ractor.make_shareable(->(pt) { [pt.x, pt.y].pack("l>l>") })
  UNPACK_POINT = Ractor.make_shareable(->(s) { Point.new(*s.unpack("l>l>")) })

  # Run in a child (see the DefaultFactory examples); prints a base64 Marshal dump.
  DEFAULT_FACTORY_SCRIPT = <<~'RUBY'
    Warning[:experimental] = false
    require "msgpack"
    module DF
      class ShareableExt # type 100: shareable procs
        attr_reader :v
        def initialize(v) = @v = v
        def ==(other) = other.class == self.class && other.v == v
      end
      class SymbolExt < ShareableExt # type 101: method names
        def to_msgpack_ext = [v].pack("N")
        def self.from_msgpack_ext(data) = new(data.unpack1("N"))
      end
      class LocalExt < ShareableExt; end # type 102: non-shareable lambdas
      class FromRactorExt < ShareableExt; end # type 103: registered from a Ractor
      PACK = Ractor.make_shareable(->(o) { [o.v].pack("N") })
      UNPACK = Ractor.make_shareable(->(s) { ShareableExt.new(s.unpack1("N")) })
      def self.hex(s) = s.unpack1("H*").scan(/../).join(" ")
      def self.err = yield.then { :no_error } rescue "#{$!.class}: #{$!.message}"
    end
    df = MessagePack::DefaultFactory
    df.register_type(100, DF::ShareableExt, packer: DF::PACK, unpacker: DF::UNPACK)
    df.register_type(101, DF::SymbolExt, packer: :to_msgpack_ext, unpacker: :from_msgpack_ext)
    df.register_type(102, DF::LocalExt, packer: ->(o) { [o.v].pack("N") }, unpacker: ->(s) { DF::LocalExt.new(s.unpack1("N")) })
    r = { main: [df.frozen?, Ractor.shareable?(df)] }
    r[:seen] = RactorHelpers.ractor_value(Ractor.new do
      d = MessagePack::DefaultFactory
      types = d.registered_types.select { |t| (100..102).cover?(t[:type]) }
      [d.frozen?, Ractor.shareable?(d), types.map { |t| [t[:type], t[:class].name, !t[:packer].nil?, !t[:unpacker].nil?] }]
    end)
    r[:shared] = RactorHelpers.ractor_value(Ractor.new do
      obj = [DF::ShareableExt.new(7), DF::SymbolExt.new(8), { "k" => DF::SymbolExt.new(9) }]
      data = MessagePack.pack(obj)
      [DF.hex(data), MessagePack.unpack(data) == obj, obj.to_msgpack == data]
    end)
    r[:local] = RactorHelpers.ractor_value(Ractor.new do
      [DF.err { MessagePack.pack([DF::LocalExt.new(1)]) }, DF.err { MessagePack.unpack("\xD6\x66\x00\x00\x00\x01".b) },
       MessagePack.pack(DF::ShareableExt.new(1)).bytesize]
    end)
    r[:local_in_main] = [DF.hex(MessagePack.pack(DF::LocalExt.new(1))),
                         MessagePack.unpack(MessagePack.pack(DF::LocalExt.new(1))) == DF::LocalExt.new(1)]
    r[:from_ractor] = RactorHelpers.ractor_value(Ractor.new do
      d = MessagePack::DefaultFactory
      e = DF.err do
        d.register_type(103, DF::FromRactorExt, packer: ->(o) { [o.v].pack("N") }, unpacker: ->(s) { DF::FromRactorExt.new(s.unpack1("N")) })
      end
      d.register_type(103, DF::FromRactorExt, packer: Ractor.make_shareable(proc { |o| [o.v].pack("N") }),
                                              unpacker: Ractor.make_shareable(proc { |s| DF::FromRactorExt.new(s.unpack1("N")) }))
      [e, MessagePack.unpack(MessagePack.pack(DF::FromRactorExt.new(4))).v]
    end)
    r[:from_ractor_in_main] = [df.type_registered?(103), MessagePack.unpack(MessagePack.pack(DF::FromRactorExt.new(5))).v]
    r[:leak] = RactorHelpers.ractor_value(Ractor.new do
      pk = MessagePack::DefaultFactory.packer.registered_types.find { |t| t[:type] == 102 }
      uk = MessagePack::DefaultFactory.unpacker.registered_types.find { |t| t[:type] == 102 }
      [pk[:packer].nil?, uk[:unpacker].nil?]
    end)
    puts [Marshal.dump(r)].pack("m0")
  RUBY

  def self.bigint_factory
    f = MessagePack::Factory.new
    f.register_type(1, Integer, packer: MessagePack::Bigint.method(:to_msgpack_ext),
                                unpacker: MessagePack::Bigint.method(:from_msgpack_ext),
                                oversized_integer_extension: true)
    f
  end

  # A frozen factory whose registrations are all shareable.
  def self.shareable_factory
    f = MessagePack::Factory.new
    f.register_type(1, Point, packer: PACK_POINT, unpacker: UNPACK_POINT)
    f.register_type(2, SymbolExt) # default options: :to_msgpack_ext / :from_msgpack_ext
    f.register_type(MessagePack::Timestamp::TYPE, Time,
                    packer: MessagePack::Time::Packer, unpacker: MessagePack::Time::Unpacker)
    f.register_type(3, Integer, packer: MessagePack::Bigint.method(:to_msgpack_ext),
                                unpacker: MessagePack::Bigint.method(:from_msgpack_ext),
                                oversized_integer_extension: true)
    f.freeze
  end

  # Every Packer write method; returns the bytes (run in main and in Ractors).
  def self.packer_workout
    pk = MessagePack::Packer.new
    pk.write_nil.write_true.write_false.write_int(-33).write_int(2**40).write_float(1.5)
    pk.write_float32(0.25).write_string("héllo").write_bin("\x00\xFF".b).write_symbol(:sym)
    pk.write_array([1, [2]]).write_hash({ "k" => { "n" => nil } }).write_ext(5, "pl")
    pk.write_extension(MessagePack::ExtensionValue.new(-2, "x"))
    pk.write_array_header(2).write(1).write("two").write_map_header(1).write(:a).write(3)
    pk.write_bin_header(3)
    pk.buffer << "abc"
    sizes = [pk.size, pk.empty?, pk.to_a.join == pk.to_s]
    bytes = pk.full_pack
    [bytes, sizes, pk.empty?]
  end

  # Unpacker API over UNPACK_INPUT (run in main and in Ractors).
  def self.unpacker_workout(data)
    out = []
    u = MessagePack::Unpacker.new(symbolize_keys: true, freeze: true)
    u.feed(data)
    out << u.read_array_header << u.read << u.read << u.skip_nil << u.read << u.skip_nil << u.skip
    out << u.read_map_header << u.read << u.read << u.read.frozen?
    u.feed_each(MessagePack.pack({ "z" => [1, 2] }) * 2) { |o| out << o << o.frozen? }
    u.feed("\x01\x02".b)
    u.each { |o| out << o }
    u.feed("\x93\x01".b)
    begin
      u.read
    rescue EOFError
      out << :eof
    end
    u.buffer << "\x02\x03".b
    out << u.read << u.buffer.empty?
    out << (u.feed("\xC1".b).read rescue $!.class) << u.feed("\x07".b).read
  end
  UNPACK_INPUT = Ractor.make_shareable(
    MessagePack.pack([1, "str"]) + MessagePack.pack(nil) + MessagePack.pack({ "skipped" => [1] }) +
    MessagePack.pack({ "k" => "v" }) + MessagePack.pack("tail")
  )

  def self.buffer_workout
    b = MessagePack::Buffer.new
    b << "abc" << "defg"
    n = b.write("hij")
    out = [n, b.size, b.to_s, b.to_a.join, b.read(2), b.skip(1), b.read_all(3), b.empty?]
    out << b.read << b.read(1) << b.empty?
    b << "x" * 300
    out << b.skip_all(100).size << b.read_all(200).bytesize << b.read_all << b.read
    b << "q"
    b.clear
    out << b.size
  end

  def self.io_workout
    io = StringIO.new(+"".b)
    pk = MessagePack::Packer.new(io)
    100.times { |i| pk.write([i, "s#{i}", { "i" => i }]) }
    pk.flush
    MessagePack.pack(RECORD, io)
    MessagePack::Packer.new(io).write(:end).full_pack
    io.rewind
    u = MessagePack::Unpacker.new(io, io_buffer_size: 1024)
    got = []
    u.each { |o| got << o }
    io.rewind
    first = MessagePack::Unpacker.new(io).read
    buf_io = StringIO.new(MessagePack.pack([1, 2, 3]))
    b = MessagePack::Buffer.new(buf_io)
    [got.size, got[0], got[99], got[100] == RECORD, got[101], first, b.read_all(1), b.read, b.io.equal?(buf_io)]
  end

  REGISTER_WHILE_USED = <<~'RUBY'
    Warning[:experimental] = false
    require "msgpack"
    class SymbolExt
      attr_reader :v
      def initialize(v) = @v = v
      def to_msgpack_ext = [v].pack("N")
      def self.from_msgpack_ext(data) = new(data.unpack1("N"))
    end
    MessagePack::DefaultFactory.register_type(101, SymbolExt)
    GC.auto_compact = true
    ractors = 2.times.map do
      Ractor.new do
        data = MessagePack.pack(SymbolExt.new(7))
        errors = Hash.new(0)
        t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
        until Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0 > 5
          begin
            v = MessagePack::DefaultFactory.unpacker.feed(data).read
            errors[:wrong_value] += 1 unless v.is_a?(SymbolExt) && v.v == 7
          rescue Exception => e
            errors["#{e.class}: #{e.message[0, 100]}"] += 1
          end
        end
        errors
      end
    end
    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    n = 0
    until Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0 > 5
      MessagePack::DefaultFactory.register_type(101, SymbolExt) # new lambdas; the old ones become garbage
      GC.start if (n += 1) % 2 == 0
    end
    p ractors.map { |r| RactorHelpers.ractor_value(r) }
  RUBY

  def self.round_trip_loop(seed, n)
    bad = 0
    rec = RECORD.dup
    n.times do |i|
      rec["id"] = seed * 1_000_000 + i
      rec["host"] = "h#{i % 7}"
      data = i.even? ? MessagePack.pack(rec) : MessagePack::Packer.new.write(rec).to_s
      back = i % 3 == 0 ? MessagePack.unpack(data) : MessagePack::Unpacker.new.feed(data).read
      bad += 1 unless back == rec && back["id"] == seed * 1_000_000 + i
    end
    [seed, bad]
  end
end

RSpec.describe "Ractor safety", :ractor do
  # Runs the block in a new Ractor and returns its result; errors raised in the
  # Ractor are re-raised here with their real class.
  def in_ractor(*args, &block)
    ractor_value(Ractor.new(*args, &block))
  rescue Ractor::RemoteError => e
    raise e.cause, cause: nil
  end

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

  describe "Factory" do
    it "Factory.new + register_type + dump/load inside a Ractor" do
      got = in_ractor do
        f = MessagePack::Factory.new
        f.register_type(1, RactorSpec::Point, packer: RactorSpec::PACK_POINT, unpacker: RactorSpec::UNPACK_POINT)
        f.register_type(2, RactorSpec::SymbolExt)
        f.register_type(0, Symbol)
        obj = [RactorSpec::Point.new(3, -4), RactorSpec::SymbolExt.new(9), :sym]
        data = f.dump(obj)
        [data, f.load(data), f.registered_types.map { |t| t[:type] }, f.type_registered?(RactorSpec::Point),
         f.unpacker.feed(data).read, f.packer.write(obj).full_pack == data]
      end
      obj = [RactorSpec::Point.new(3, -4), RactorSpec::SymbolExt.new(9), :sym]
      expect(got[0]).to eq(bin("93 d7 01 00 00 00 03 ff ff ff fc d6 02 00 00 00 09 c7 03 00 73 79 6d"))
      expect(got[1]).to eq(obj)
      expect(got[2]).to eq([0, 1, 2])
      expect(got[3]).to be(true)
      expect(got[4]).to eq(obj)
      expect(got[5]).to be(true)
    end

    it "Timestamp ext and Time round trips inside a Ractor" do
      got = in_ractor do
        f = MessagePack::Factory.new
        f.register_type(MessagePack::Timestamp::TYPE, MessagePack::Timestamp)
        stamps = [[1, 0], [2**32 - 1, 0], [2**32, 5], [2**34, 1], [-1, 999_999_999]]
        ts = stamps.map { |s, n| f.dump(MessagePack::Timestamp.new(s, n)) }
        ts_back = ts.map { |d| f.load(d) }.map { |t| [t.sec, t.nsec] }
        tf = MessagePack::Factory.new
        tf.register_type(-1, Time, packer: MessagePack::Time::Packer, unpacker: MessagePack::Time::Unpacker)
        times = [Time.at(1_700_000_000, 123_456_789, :nanosecond), Time.at(0), Time.at(-5, 1, :nanosecond),
                 Time.at(2**35, 7, :nanosecond)]
        td = times.map { |t| tf.dump(t) }
        back = td.map { |d| tf.load(d) }
        [ts.map(&:bytesize), ts_back == stamps, td.map(&:bytesize), back == times, back.map(&:nsec)]
      end
      expect(got).to eq([[6, 6, 10, 15, 15], true, [10, 6, 15, 15], true, [123_456_789, 0, 1, 7]])
    end

    it "Bigint ext (msgpack/bigint) round trips inside a Ractor" do
      values = [2**64, -(2**64) - 1, 2**200 + 12_345, -(2**130)]
      main = RactorSpec.bigint_factory
      got = in_ractor(values) do |vals|
        f = RactorSpec.bigint_factory # Method objects made in this Ractor
        data = vals.map { |v| f.dump(v) }
        [data, data.map { |d| f.load(d) }, f.dump(2**63), (MessagePack.pack(2**64) rescue $!.class)]
      end
      expect(got[0]).to eq(values.map { |v| main.dump(v) })
      expect(got[1]).to eq(values)
      expect(got[2]).to eq(bin("cf 80 00 00 00 00 00 00 00"))
      expect(got[3]).to eq(RangeError)
    end

    it "a frozen factory with shareable callables is shareable and used by several Ractors at once" do
      f = RactorSpec.shareable_factory
      expect(f).to be_frozen
      expect(Ractor.shareable?(f)).to be(true)
      expect(Ractor.make_shareable(f)).to equal(f)
      ractors = 3.times.map do |i|
        Ractor.new(f, i) do |fac, k|
          obj = [RactorSpec::Point.new(k, -k), RactorSpec::SymbolExt.new(k), Time.at(k, 5, :nanosecond), 2**(70 + k)]
          ok = 0
          300.times do
            ok += 1 if fac.load(fac.dump(obj)) == obj && fac.unpacker.feed(fac.packer.write(obj).to_s).read == obj
          end
          [k, ok, Ractor.shareable?(fac), fac.frozen?, (fac.register_type(9, Symbol) rescue $!.class)]
        end
      end
      expect(ractors.map { |r| ractor_value(r) }.sort).to eq([0, 1, 2].map { |k| [k, 300, true, true, FrozenError] })
    end

    it "Ractor.make_shareable fails cleanly for a frozen factory holding a non-shareable lambda" do
      f = MessagePack::Factory.new
      f.register_type(1, RactorSpec::Point, packer: ->(pt) { [pt.x, pt.y].pack("l>l>") },
                                            unpacker: RactorSpec::UNPACK_POINT)
      f.freeze
      expect(f).to be_frozen
      expect(Ractor.shareable?(f)).to be(false)
      expect { Ractor.make_shareable(f) }.to raise_error(Ractor::Error)
      # Ruby 3.1 lets any T_DATA object be *copied* to another Ractor (ractor.c's
      # obj_refer_only_shareables_p_i increments the pointer, not the count), so the
      # copy may arrive holding the main Ractor's lambda: it must refuse to call it.
      got = begin
        in_ractor(f) do |fac|
          [(fac.dump(RactorSpec::Point.new(1, 2)) rescue [$!.class, $!.message]), fac.load("\xD7\x01\x00\x00\x00\x01\x00\x00\x00\x02".b)]
        end
      rescue Ractor::Error => e
        e.class
      end
      if got == Ractor::Error
        expect(got).to eq(Ractor::Error) # a Ruby that refuses the copy
      else
        expect(got[0][0]).to eq(Ractor::IsolationError)
        expect(got[0][1]).to match(/ext type 1\b/)
        expect(got[1]).to eq(RactorSpec::Point.new(1, 2)) # the shareable unpacker still works
      end
      # still fully usable in the main Ractor
      expect(f.load(f.dump(RactorSpec::Point.new(1, 2)))).to eq(RactorSpec::Point.new(1, 2))
    end

    it "pools of a shareable factory are created and used per Ractor" do
      f = RactorSpec.shareable_factory
      ractors = 2.times.map do |i|
        Ractor.new(f, i) do |fac, k|
          pool = fac.pool(2, symbolize_keys: true)
          rec = RactorSpec::RECORD.merge("id" => k, "pt" => RactorSpec::Point.new(k, k))
          ok = 0
          200.times do
            data = pool.dump(rec)
            back = pool.load(data)
            ok += 1 if back[:id] == k && back[:pt] == RactorSpec::Point.new(k, k) && back[:tags] == %w[a b c]
          end
          via_blocks = pool.packer { |pk| pk.write([1, 2]).to_s }
          via_blocks = pool.unpacker { |uk| uk.feed(via_blocks).read }
          frozen_member = pool.packer { |pk| (pk.register_type(5, Symbol) { "" } rescue $!.class) }
          [k, ok, via_blocks, frozen_member]
        end
      end
      expect(ractors.map { |r| ractor_value(r) }.sort_by(&:first)).to eq([[0, 200, [1, 2], FrozenError], [1, 200, [1, 2], FrozenError]])
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

  # Pools remember their factory for Factory#compact!. Kept in a Ruby
  # ObjectSpace::WeakMap this crashed (or hung at exit): on Ruby 3.1 WeakMaps add
  # finalizers to a process-wide table that Ractors update without a lock.
  it "Ractors creating pools at once, then compacting, run and exit cleanly" do
    script = <<~RUBY
      require "msgpack"
      f = MessagePack::Factory.new.freeze
      rs = 4.times.map do |i|
        Ractor.new(f, i) do |fac, k|
          n = 0
          2000.times do
            pool = fac.pool(1)
            n += 1 if pool.load(pool.dump([k, "x"])) == [k, "x"]
          end
          [n, fac.compact!.objects_visited >= 2]
        end
      end
      p rs.map { |r| RactorHelpers.ractor_value(r) }
    RUBY
    stdout, stderr, status = run_isolated_ruby("Warning[:experimental] = false\n" + RactorHelpers::REQUIRE_LINE + script)
    expect(status.success?).to be(true), "child failed (#{status.inspect}):\n#{stderr[0, 2000]}"
    expect(stdout.lines.last.strip).to eq("[[2000, true], [2000, true], [2000, true], [2000, true]]")
  end

  # DefaultFactory is global and registrations on it cannot be removed, so these
  # scenarios run in one child process (other specs decode arbitrary ext types
  # with MessagePack.unpack and must not meet ours).
  describe "DefaultFactory" do
    before(:context) do
      stdout, stderr, status = run_isolated_ruby(RactorHelpers::REQUIRE_LINE + RactorSpec::DEFAULT_FACTORY_SCRIPT)
      raise "child failed (#{status.inspect}):\n#{stderr}" unless status.success?

      @df = Marshal.load(stdout.lines.last.strip.unpack1("m0")) # rubocop:disable Security/MarshalLoad
    end

    it "is shareable while unfrozen and readable from a Ractor" do
      expect(@df[:main]).to eq([false, true])
      # non-shareable callables show as nil outside the main Ractor
      expect(@df[:seen]).to eq([false, true, [[100, "DF::ShareableExt", true, true],
                                              [101, "DF::SymbolExt", true, true],
                                              [102, "DF::LocalExt", false, false]]])
    end

    it "types registered in main with a shareable proc or a method name work inside a Ractor" do
      expect(@df[:shared]).to eq(["93 d6 64 00 00 00 07 d6 65 00 00 00 08 81 a1 6b d6 65 00 00 00 09", true, true])
    end

    it "a non-shareable lambda raises Ractor::IsolationError naming the type inside a Ractor, and works in main" do
      pack_err, unpack_err, size = @df[:local]
      expect(pack_err).to match(/IsolationError: .*ext type 102\b/).and match(/DF::LocalExt/)
      expect(unpack_err).to match(/IsolationError: .*ext type 102\b/)
      expect(size).to eq(6)
      expect(@df[:local_in_main]).to eq(["d6 66 00 00 00 01", true])
    end

    it "registering from a Ractor needs shareable callables; the registration is seen in main" do
      expect(@df[:from_ractor][0]).to match(/IsolationError: .*ext type 103\b/)
      expect(@df[:from_ractor][1]).to eq(4)
      expect(@df[:from_ractor_in_main]).to eq([true, 5])
    end

    it "packers and unpackers made from it inside a Ractor do not hand out non-shareable procs" do
      expect(@df[:leak]).to eq([true, true])
    end

    # Runs in a child process: with the bug it crashes ([BUG] try to mark T_NONE object)
    # or calls a stale object; it needs a few seconds of registrations + GCs to show.

    it "Ractors keep working while main re-registers types and runs compacting GCs" do
      stdout, stderr, status = run_isolated_ruby(RactorHelpers::REQUIRE_LINE + RactorSpec::REGISTER_WHILE_USED)
      expect([status.success?, stdout.strip]).to eq([true, "[{}, {}]"]), stderr.lines.first(3).join
    end
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

  describe "objects that are not shareable" do
    it "Packer, Unpacker and Buffer are not shareable" do
      [MessagePack::Packer.new, MessagePack::Unpacker.new, MessagePack::Buffer.new].each do |o|
        expect(Ractor.shareable?(o)).to be(false)
        expect { Ractor.make_shareable(o) }.to raise_error(Ractor::Error)
      end
    end

    it "moving a Packer or an Unpacker raises Ruby's error and leaves it usable" do
      pk = MessagePack::Packer.new.write(1)
      uk = MessagePack::Unpacker.new.feed("\x93\x01".b)
      receiver = Ractor.new do
        Thread.current.report_on_exception = false # it ends in the NoMethodError expected below
        o = Ractor.receive
        o.respond_to?(:write) ? o.write(2).to_s : o.feed("\x02\x03").read
      end
      [pk, uk].each do |obj|
        expect { receiver.send(obj, move: true) }.to raise_error(Ractor::Error, /can not move/)
      end
      receiver.send(:done)
      expect { ractor_value(receiver) }.to raise_error(Ractor::RemoteError) # :done has no #feed
      expect(pk.write(2).to_s).to eq("\x01\x02".b)
      expect(uk.feed("\x02\x03".b).read).to eq([1, 2, 3])
    end

    # On Ruby 3.1 a copy is made with rb_obj_clone (see above); Packer, Unpacker and
    # Buffer have no initialize_copy, so the copy arrives as a fresh, empty object.
    it "sending (copying) a Packer, Unpacker or Buffer never crashes and gives a usable object" do
      pk = MessagePack::Packer.new.write([1, 2])
      buf = MessagePack::Buffer.new << "abc"
      uk = MessagePack::Unpacker.new.feed("\x92\x01".b)
      expect { uk.read }.to raise_error(EOFError) # leaves a half-decoded array behind
      view = MessagePack::Packer.new.write(3).buffer
      results = [pk, buf, uk, view].map do |obj|
        r = Ractor.new do
          o = Ractor.receive
          next :not_sent if o.nil? # the main Ractor could not send its object
          sink = o.is_a?(MessagePack::Packer) ? o.buffer : o
          [o.class, o.is_a?(MessagePack::Unpacker) ? o.feed("\x05").read : (sink << "z").to_s.b[-1]]
        end
        begin
          r.send(obj)
        rescue Ractor::Error, TypeError => e
          # msgpack-rs refuses copies (TypeError "can't copy ..."): Ruby 3.1 would
          # otherwise deliver an empty object. Let the waiting Ractor finish cleanly.
          r.send(nil)
          expect(ractor_value(r)).to eq(:not_sent)
          next e.class
        end
        ractor_value(r)
      end
      expect(results).to all(eq(Ractor::Error).or(eq(TypeError)).or(be_an(Array)))
      arrays = results.grep(Array)
      expect(arrays.map(&:first) - [MessagePack::Packer, MessagePack::Buffer, MessagePack::Unpacker]).to eq([])
      expect(arrays.map(&:last)).to all(eq("z").or(eq(5)).or(eq([1, 5])))
      # the originals are intact
      expect(pk.to_s).to eq("\x92\x01\x02".b)
      expect(buf.to_s).to eq("abc")
      expect(uk.feed("\x02".b).read).to eq([1, 2])
      expect(view.to_s).to eq("\x03".b)
    end
  end

  it "4 Ractors do 20,000 pack/unpack round trips each concurrently, every result checked" do
    ractors = 4.times.map { |i| Ractor.new(i) { |k| RactorSpec.round_trip_loop(k, 20_000) } }
    expect(ractors.map { |r| ractor_value(r) }.sort).to eq([[0, 0], [1, 0], [2, 0], [3, 0]])
  end
end
