# frozen_string_literal: true

# Shared by the Ractor safety specs (spec/ractor_roundtrip_spec.rb,
# spec/ractor_factory_spec.rb, spec/ractor_unshareable_spec.rb): every scenario runs
# inside non-main Ractors and checks its results. Results come back through ractor_value
# (spec/support/ractor.rb): Ractor#value on Ruby 3.5+, Ractor#take on 3.1-3.4; a Ractor
# that has several values to report returns them as an Array from its block.
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
# oracle run (the spec files return early too).
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

# Included by the `RSpec.describe "Ractor safety"` groups.
module RactorSpecHelpers
  # Runs the block in a new Ractor and returns its result; errors raised in the
  # Ractor are re-raised here with their real class.
  def in_ractor(*args, &block)
    ractor_value(Ractor.new(*args, &block))
  rescue Ractor::RemoteError => e
    raise e.cause, cause: nil
  end
end
