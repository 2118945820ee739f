# frozen_string_literal: true

# Memory: compact! on every class and the MessagePack.compact! cascade, the
# memory-pressure watcher (driven through a FIFO), and mapped-file input.
# msgpack-rs only: the C gem has none of this (skipped in oracle runs).

require "tmpdir"
require "timeout"
require "stringio"
require "base64"

# (Constants written inside a describe block would land on Object.)
module MemSpec
  MIB = 1024 * 1024
  CHUNK = ("x" * 65_536).freeze # below the write-reference threshold: copied, not referenced

  # Packs itself through a callback, which makes MessagePack.pack buffer its
  # output in the Ractor's scratch packer (plain data is written straight
  # into the returned String).
  class Callback
    def to_msgpack(packer)
      packer.write("callback")
    end
  end
end

RSpec.describe "Memory", if: !MSGPACK_SPEC_ORACLE do

  def tmpdir
    @tmpdir ||= Dir.mktmpdir("msgpack-memory-spec")
  end

  after do
    FileUtils.remove_entry(@tmpdir) if @tmpdir
    @tmpdir = nil
  end

  def write_file(name, bytes)
    path = File.join(tmpdir, name)
    File.binwrite(path, bytes)
    path
  end

  def records(count, offset = 0)
    Array.new(count) do |i|
      n = offset + i
      { "id" => n, "host" => "web-#{n % 7}", "msg" => "request #{n} " * (n % 5), "ok" => n.even?,
        "t" => n * 0.5, "tags" => ["a", n.to_s], "raw" => "\xFF#{n}".b, "nil" => nil, "neg" => -n }
    end
  end

  describe "MessagePack::CompactReport" do
    let(:mib) { MemSpec::MIB }
    let(:report) { MessagePack::CompactReport.new(40 * mib, 2 * mib, 3, 0.0041, 500 * mib, 462 * mib) }

    it "has the numbers and a readable to_s" do
      expect(report.bytes_released).to eq(38 * MemSpec::MIB)
      expect(report.objects_visited).to eq(3)
      expect(report.rss_released).to eq(38 * MemSpec::MIB)
      expect(report.to_s).to eq("compacted 38.0 MiB in 4.1 ms (3 objects; RSS 500.0 MiB -> 462.0 MiB)")
      expect(report.inspect).to include("compacted 38.0 MiB")
      expect(report.to_h).to include(bytes_before: 40 * mib, bytes_after: 2 * mib, bytes_released: 38 * mib)
    end

    it "is Integer-ish: to_i, to_int, comparisons and arithmetic use bytes_released" do
      expect(report.to_i).to eq(38 * MemSpec::MIB)
      expect(Integer(report)).to eq(38 * MemSpec::MIB)
      expect(report).to be > 37 * MemSpec::MIB
      expect(report).to eq(38 * MemSpec::MIB)
      expect(1 + report).to eq(38 * MemSpec::MIB + 1)
    end

    it "adds up and is frozen (shareable)" do
      sum = report + MessagePack::CompactReport.new(10, 4, 1, 0.001)
      expect(sum.bytes_released).to eq(38 * MemSpec::MIB + 6)
      expect(sum.objects_visited).to eq(4)
      expect(report).to be_frozen
      expect(Ractor.shareable?(report)).to be(true)
      expect(MessagePack::CompactReport.format_bytes(512)).to eq("512 B")
      expect(MessagePack::CompactReport.format_bytes(3 * 1024**3)).to eq("3.0 GiB")
    end
  end

  describe "Buffer#compact!" do
    it "releases a mostly consumed 64 MiB buffer and keeps the unread bytes" do
      buffer = MessagePack::Buffer.new
      1024.times { |i| buffer << MemSpec::CHUNK.tr("x", (97 + (i % 26)).chr) }
      expect(buffer.size).to eq(64 * MemSpec::MIB)
      buffer.read(63 * MemSpec::MIB)
      report = buffer.compact!
      expect(report).to be_a(MessagePack::CompactReport)
      expect(report.bytes_released).to be >= 60 * MemSpec::MIB
      expect(report.bytes_after).to be < 2 * MemSpec::MIB
      expect(report.objects_visited).to eq(1)
      rest = buffer.read
      expect(rest.bytesize).to eq(MemSpec::MIB)
      expect(rest[0, 65_536]).to eq(MemSpec::CHUNK.tr("x", (97 + (1008 % 26)).chr))
      expect(buffer.compact!.bytes_released).to be < 1024
    end

    it "compacts its owner through a view" do
      packer = MessagePack::Packer.new
      packer.write(Array.new(1024) { MemSpec::CHUNK })
      packer.full_pack
      expect(packer.buffer.compact!.bytes_released).to be >= 60 * MemSpec::MIB
    end
  end

  describe "Packer#compact!" do
    it "releases the output buffer full_pack retained, and keeps working" do
      packer = MessagePack::Packer.new
      packer.write(Array.new(1024) { MemSpec::CHUNK })
      expect(packer.full_pack.bytesize).to be > 64 * MemSpec::MIB
      report = packer.compact!
      expect(report.bytes_released).to be >= 60 * MemSpec::MIB
      expect(report.to_s).to match(/\Acompacted 6\d\.\d MiB in \d+\.\d ms \(1 object\)\z/)
      expect(MessagePack.unpack(packer.write([1, "two"]).full_pack)).to eq([1, "two"])
    end

    it "keeps a message that is half written" do
      packer = MessagePack::Packer.new
      packer.write_array_header(2).write("a" * 100_000)
      packer.compact!
      packer.write("b")
      expect(MessagePack.unpack(packer.to_s)).to eq(["a" * 100_000, "b"])
    end
  end

  describe "Unpacker#compact!" do
    it "never loses buffered, not yet read data: half a message decodes after compact!" do
      message = MessagePack.pack(records(2000))
      half = message.bytesize / 2
      unpacker = MessagePack::Unpacker.new
      unpacker.feed(message[0, half])
      expect { unpacker.read }.to raise_error(EOFError)
      expect(unpacker.compact!).to be_a(MessagePack::CompactReport)
      GC.start
      unpacker.feed(message[half..])
      expect(unpacker.read).to eq(records(2000))
    end

    it "drops a large consumed prefix of copied input" do
      # A high read_reference_threshold makes the unpacker copy what it is fed.
      unpacker = MessagePack::Unpacker.new(read_reference_threshold: 1 << 30)
      one = MessagePack.pack(MemSpec::CHUNK)
      1024.times { unpacker.feed(one) }
      1000.times { expect(unpacker.read.bytesize).to eq(65_536) }
      report = unpacker.compact!
      expect(report.bytes_released).to be >= 30 * MemSpec::MIB
      objects = []
      unpacker.each { |o| objects << o }
      expect(objects.size).to eq(24)
      expect(objects).to all(eq(MemSpec::CHUNK))
    end
  end

  describe "Factory#compact!" do
    it "compacts the idle members of its pools, also for an unfrozen factory" do
      factory = MessagePack::Factory.new
      pool = factory.pool(2)
      expect(pool.load(pool.dump(records(10)))).to eq(records(10))
      report = factory.compact!
      expect(report).to be_a(MessagePack::CompactReport)
      expect(report.objects_visited).to be >= 2 # a packer and an unpacker
      expect(pool.load(pool.dump([1]))).to eq([1])
    end

    it "finds nothing big left in the Ractor's scratch packer: a big message's buffer goes when its call ends" do
      # A callback sends the walk through the packer's own buffer (not straight into the
      # returned String); that buffer is the library's, so it is given back at once.
      MessagePack.pack([MemSpec::Callback.new] + Array.new(1024) { MemSpec::CHUNK })
      report = MessagePack::DefaultFactory.compact!
      expect(report.objects_visited).to be >= 1
      expect(report.bytes_released).to be < MemSpec::MIB
      expect(MessagePack.unpack(MessagePack.pack({ "a" => 1 }))).to eq({ "a" => 1 })
    end

    it "keeps nothing back after MessagePack.pack of plain data (it packs into the returned String)" do
      packed = MessagePack.pack(Array.new(1024) { MemSpec::CHUNK })
      expect(packed.bytesize).to be > 64 * MemSpec::MIB
      expect(MessagePack::DefaultFactory.compact!.bytes_released).to be < MemSpec::MIB
      expect(MessagePack.unpack(packed).size).to eq(1024)
    end

    it "works on a frozen factory" do
      factory = MessagePack::Factory.new.freeze
      pool = factory.pool(1)
      pool.dump(1)
      expect(factory.compact!.objects_visited).to be >= 1
    end
  end

  describe "MessagePack.compact!" do
    it "cascades through the live Buffers, Packers and Unpackers of this Ractor" do
      buffer = MessagePack::Buffer.new
      256.times { buffer << MemSpec::CHUNK }
      buffer.read(15 * MemSpec::MIB)
      packer = MessagePack::Packer.new
      packer.write(Array.new(256) { MemSpec::CHUNK })
      packer.full_pack
      unpacker = MessagePack::DefaultFactory.unpacker
      unpacker.feed(MessagePack.pack([1, 2])[0, 2])

      report = MessagePack.compact!
      expect(report.bytes_released).to be >= 28 * MemSpec::MIB
      expect(report.objects_visited).to be >= 3
      expect(report.rss_before).to be_a(Integer)
      expect(report.rss_after).to be_a(Integer)
      expect(report.to_s).to include("RSS")

      expect(buffer.read.bytesize).to eq(MemSpec::MIB)
      unpacker.feed(MessagePack.pack([1, 2])[2..])
      expect(unpacker.read).to eq([1, 2])
    end

    it "forgets instances once they are freed (the registry is weak)" do
      # In a helper so no reference stays on this frame's stack. GC off while
      # counting: a collection in between could free instances counted before.
      make = -> { 2000.times { MessagePack::Unpacker.new; MessagePack::Buffer.new } }
      GC.disable
      begin
        before = MessagePack::Memory.tracked_count
        make.call
        expect(MessagePack::Memory.tracked_count).to eq(before + 4000)
      ensure
        GC.enable
      end
      GC.start
      GC.start
      expect(MessagePack::Memory.tracked_count).to be < before + 400
      expect(MessagePack.compact!).to be_a(MessagePack::CompactReport)
    end

    it "reuses one scratch decoder per Ractor for MessagePack.unpack, also when an ext proc unpacks" do
      wrapper = Struct.new(:inner)
      factory = MessagePack::Factory.new
      factory.register_type(1, wrapper, packer: ->(w) { factory.dump(w.inner) },
                                        unpacker: ->(data) { wrapper.new(factory.load(data)) })
      value = [wrapper.new([1, { "a" => wrapper.new([2, [3]]) }]), [[4]]]
      expect(factory.load(factory.dump(value))).to eq(value)
      deep = MessagePack.pack((1..50).reduce([]) { |acc, _| [acc] })
      expect(MessagePack.unpack(deep).flatten).to eq([])
      expect { MessagePack.unpack("\x93\x01".b) }.to raise_error(EOFError)
      expect(MessagePack.unpack("\x92\x01\x02".b)).to eq([1, 2])
      expect(MessagePack.compact!.bytes_released).to be >= 0
      expect(MessagePack.unpack(deep).flatten).to eq([])
    end

    it "clears the map-key cache (decoded keys stay equal and frozen)" do
      first = MessagePack.unpack(MessagePack.pack({ "cached_key" => 1 }))
      MessagePack.compact!
      second = MessagePack.unpack(MessagePack.pack({ "cached_key" => 2 }))
      expect(second.keys.first).to eq("cached_key")
      expect(second.keys.first).to be_frozen
      expect(first.keys.first).to equal(second.keys.first) # interned either way
    end

    it "visits only the calling Ractor's instances" do
      keep = Array.new(50) { MessagePack::Buffer.new }
      ractor = Ractor.new do
        buffer = MessagePack::Buffer.new
        64.times { buffer << ("y" * 65_536) }
        buffer.read(3 * 1024 * 1024)
        report = MessagePack.compact!
        [report.objects_visited, report.bytes_released, buffer.read.bytesize, Ractor.shareable?(report)]
      end
      visited, released, rest, shareable = ractor_value(ractor)
      expect(visited).to be < 10
      expect(released).to be >= 2 * MemSpec::MIB
      expect(rest).to eq(MemSpec::MIB)
      expect(shareable).to be(true)
      expect(MessagePack.compact!.objects_visited).to be >= keep.size
    end
  end

  describe "MessagePack::MemoryPressure" do
    after do
      MessagePack::MemoryPressure.stop
    end

    def fifo
      path = File.join(tmpdir, "pressure")
      File.mkfifo(path)
      path
    end

    def trigger(path)
      File.open(path, "w") { |f| f.write("event") }
    end

    it "runs MessagePack.compact! and the block on an event from a FIFO, and stop joins the thread" do
      log = StringIO.new
      events = Queue.new
      path = fifo
      watcher = MessagePack::MemoryPressure.watch(path: path, logger: log) { |report| events << report }
      expect(watcher).to be_a(MessagePack::MemoryPressure::Watcher)
      expect(watcher.mode).to eq(:fifo)
      expect(MessagePack::MemoryPressure).to be_watching

      packer = MessagePack::Packer.new
      packer.write(Array.new(256) { MemSpec::CHUNK })
      packer.full_pack
      trigger(path)
      report = Timeout.timeout(10) { events.pop }
      expect(report).to be_a(MessagePack::CompactReport)
      expect(report.bytes_released).to be >= 15 * MemSpec::MIB
      expect(watcher.events).to eq(1)
      expect(watcher.last_report).to equal(report)

      thread = watcher.instance_variable_get(:@thread)
      expect(MessagePack::MemoryPressure.stop).to be(true)
      expect(thread).not_to be_alive
      expect(watcher).not_to be_running
      expect(MessagePack::MemoryPressure).not_to be_watching
      expect(log.string).to include("watching memory pressure on #{path} (fifo)")
      expect(log.string).to match(/memory pressure \(.*\): compacted \d+\.\d MiB in/)
    end

    it "follows $MEMORY_PRESSURE_WATCH and logs through a Logger-like object" do
      messages = Queue.new
      logger = Object.new
      logger.define_singleton_method(:info) { |m| messages << m }
      logger.define_singleton_method(:warn) { |m| messages << m }
      path = fifo
      env = { "MEMORY_PRESSURE_WATCH" => path, "MEMORY_PRESSURE_WRITE" => Base64.strict_encode64("some 1 2\0") }
      old = env.keys.to_h { |k| [k, ENV[k]] }
      begin
        env.each { |k, v| ENV[k] = v }
        watcher = MessagePack::MemoryPressure.watch(logger: logger) { GC.start }
      ensure
        old.each { |k, v| ENV[k] = v }
      end
      expect(watcher.path).to eq(path)
      expect(watcher.trigger).to eq("some 1 2\0")
      trigger(path)
      Timeout.timeout(10) { messages.pop until watcher.events == 1 && messages.empty? && watcher.last_report }
      expect(watcher.last_report).to be_a(MessagePack::CompactReport)
      watcher.stop
      expect(watcher).not_to be_running
    end

    it "keeps running when the block raises" do
      log = StringIO.new
      path = fifo
      calls = Queue.new
      watcher = MessagePack::MemoryPressure.watch(path: path, logger: log) do
        calls << 1
        raise "boom"
      end
      trigger(path)
      Timeout.timeout(10) { calls.pop }
      Timeout.timeout(10) { sleep 0.01 until log.string.include?("memory pressure (") }
      expect(log.string).to include("callback raised RuntimeError: boom")
      expect(watcher).to be_running
      trigger(path)
      Timeout.timeout(10) { calls.pop }
    end

    it "returns false (watch) or raises (watch!) where it is unavailable or disabled" do
      log = StringIO.new
      expect(MessagePack::MemoryPressure.watch(path: File.join(tmpdir, "none"), logger: log)).to be(false)
      expect(log.string).to include("does not exist")
      expect { MessagePack::MemoryPressure.watch!(path: File.join(tmpdir, "none"), logger: nil) }
        .to raise_error(MessagePack::MemoryPressure::Unavailable, /does not exist/)
      old = ENV["MEMORY_PRESSURE_WATCH"]
      begin
        ENV["MEMORY_PRESSURE_WATCH"] = "/dev/null"
        expect(MessagePack::MemoryPressure.watch(logger: nil)).to be(false)
      ensure
        ENV["MEMORY_PRESSURE_WATCH"] = old
      end
      expect { MessagePack::MemoryPressure.watch(threshold: 5, window: 2, logger: nil) }
        .to raise_error(ArgumentError, /threshold/)
    end

    it "creates a real PSI trigger when the kernel has PSI" do
      skip "PSI is not available here" unless MessagePack::MemoryPressure.available?
      watcher = MessagePack::MemoryPressure.watch(logger: nil)
      expect(watcher.mode).to eq(:psi)
      expect(watcher.trigger).to eq("some 150000 2000000")
      expect(watcher).to be_running
      watcher.stop
      expect(watcher).not_to be_running
    end
  end

  describe "mapped-file input" do
    let(:objects) do
      records(500) + [nil, true, false, 0, -1, 2**64 - 1, -2**63, 1.5, "", "é" * 300, "\x00".b * 1000,
                      [], {}, { 1 => [2, { "x" => nil }] }, MessagePack::ExtensionValue.new(5, "ext")]
    end
    let(:path) { write_file("objects.msgpack", objects.map { |o| MessagePack.pack(o) }.join) }

    def via_io(path, **options)
      File.open(path, "rb") do |file|
        unpacker = MessagePack::Unpacker.new(file, allow_unknown_ext: true, **options)
        result = []
        unpacker.each { |o| result << o }
        result
      end
    end

    it "decodes the same objects as an Unpacker over the File" do
      mapped = MessagePack::Unpacker.open(path, allow_unknown_ext: true) { |u| u.each.to_a }
      expect(mapped).to eq(via_io(path))
      expect(mapped).to eq(objects)
      symbolized = MessagePack::Unpacker.open(path, symbolize_keys: true, allow_unknown_ext: true, &:to_a)
      expect(symbolized).to eq(via_io(path, symbolize_keys: true))
      frozen = MessagePack::Unpacker.open(path, { freeze: true }, allow_unknown_ext: true, &:first)
      expect(frozen).to be_frozen
      expect(frozen["host"]).to be_frozen
    end

    it "reads object by object, skips, seeks and knows where it is" do
      MessagePack::Unpacker.open(path, allow_unknown_ext: true) do |u|
        expect(u.size).to eq(File.size(path))
        expect(u.read).to eq(objects[0])
        u.skip
        expect(u.read).to eq(objects[2])
        position = u.pos
        expect(u.read).to eq(objects[3])
        u.seek(position)
        expect(u.read).to eq(objects[3])
        u.rewind
        expect(u.read).to eq(objects[0])
        u.each { nil }
        expect(u).to be_eof
        expect { u.read }.to raise_error(EOFError)
      end
    end

    it "copies values out: nothing refers to the mapping after close" do
      strings = MessagePack::Unpacker.open(path, allow_unknown_ext: true) { |u| u.each.select { |o| o.is_a?(Hash) } }
      File.delete(path)
      GC.start
      expect(strings.first["host"]).to eq("web-0")
      expect(strings.first["msg"]).not_to be_frozen
      strings.first["msg"] << "changed"
      expect(strings[1]["msg"]).to eq("request 1 ")
    end

    it "closes after the block, and raises IOError when used closed" do
      unpacker = MessagePack::Unpacker.open(path, allow_unknown_ext: true)
      expect(unpacker).not_to be_closed
      unpacker.close
      expect(unpacker).to be_closed
      expect { unpacker.read }.to raise_error(IOError, /closed/)
      kept = MessagePack::Unpacker.open(path) { |u| u }
      expect(kept).to be_closed
    end

    it "load_file reads exactly one object, with DefaultFactory-style options" do
      single = write_file("one.msgpack", MessagePack.pack(records(3)))
      expect(MessagePack.load_file(single)).to eq(records(3))
      expect(MessagePack.load_file(single, symbolize_keys: true).first).to include(id: 0)
      expect { MessagePack.load_file(path) }.to raise_error(MessagePack::MalformedFormatError)
      require "pathname"
      expect(MessagePack.load_file(Pathname.new(single))).to eq(records(3))
    end

    it "uses a factory's ext types with Factory#open_file / #load_file" do
      factory = MessagePack::Factory.new
      factory.register_type(1, Symbol)
      file = write_file("sym.msgpack", factory.dump([:a, :b]) + factory.dump(:c))
      expect(factory.open_file(file, &:to_a)).to eq([[:a, :b], :c])
      expect { factory.load_file(file) }.to raise_error(MessagePack::MalformedFormatError)
      expect { MessagePack::Unpacker.open(file, &:to_a) }.to raise_error(MessagePack::UnknownExtTypeError)
    end

    it "raises EOFError for a truncated file; each yields the complete objects before it" do
      bytes = File.binread(path)
      truncated = write_file("truncated.msgpack", bytes[0, bytes.bytesize - 3])
      expect { MessagePack.load_file(write_file("t1.msgpack", MessagePack.pack(records(5))[0..-2])) }
        .to raise_error(EOFError, /inside an object/)
      MessagePack::Unpacker.open(truncated, allow_unknown_ext: true) do |u|
        expect(u.each.to_a).to eq(objects[0..-2])
        expect(u).not_to be_eof
        expect { u.read }.to raise_error(EOFError)
      end
    end

    it "handles empty files: load_file raises EOFError, each yields nothing" do
      empty = write_file("empty.msgpack", "")
      expect { MessagePack.load_file(empty) }.to raise_error(EOFError)
      MessagePack::Unpacker.open(empty) do |u|
        expect(u.each.to_a).to eq([])
        expect(u.size).to eq(0)
        expect(u).to be_eof
      end
    end

    it "rejects what is not a regular file with a clear error" do
      expect { MessagePack::Unpacker.open(tmpdir) }.to raise_error(ArgumentError, /is a directory/)
      fifo = File.join(tmpdir, "fifo")
      File.mkfifo(fifo)
      expect { Timeout.timeout(5) { MessagePack.load_file(fifo) } }.to raise_error(ArgumentError, /is a FIFO/)
      expect { MessagePack.load_file("/dev/null") }.to raise_error(ArgumentError, /character device/)
      expect { MessagePack.load_file(File.join(tmpdir, "missing")) }.to raise_error(Errno::ENOENT)
    end

    it "follows a file that grows, and raises IOError when it shrinks below the position" do
      growing = write_file("growing.msgpack", MessagePack.pack(1) + MessagePack.pack(2))
      MessagePack::Unpacker.open(growing) do |u|
        expect(u.each.to_a).to eq([1, 2])
        File.open(growing, "ab") { |f| f.write(MessagePack.pack([3, "three"])) }
        expect(u.each.to_a).to eq([[3, "three"]])
        File.truncate(growing, 1)
        expect { u.read }.to raise_error(IOError, /shrank/)
      end
    end

    it "compact! gives consumed pages back" do
      big = write_file("big.msgpack", Array.new(48) { MessagePack.pack("z" * MemSpec::MIB) }.join)
      MessagePack::Unpacker.open(big) do |u|
        40.times { u.read }
        expect(u.resident_size).to be >= 30 * MemSpec::MIB
        report = u.compact!
        expect(report.bytes_released).to be >= 30 * MemSpec::MIB
        expect(u.resident_size).to be < 10 * MemSpec::MIB
        expect(u.each.to_a.size).to eq(8)
        expect(MessagePack.compact!.objects_visited).to be >= 1
      end
    end

    it "raises a clear error for recursive ext types" do
      factory = MessagePack::Factory.new
      point = Struct.new(:x, :y)
      factory.register_type(1, point, packer: ->(p, pk) { pk.write(p.x).write(p.y) },
                                      unpacker: ->(uk) { point.new(uk.read, uk.read) }, recursive: true)
      file = write_file("rec.msgpack", factory.dump(point.new(1, 2)))
      expect { factory.load_file(file) }.to raise_error(MessagePack::UnpackError, /recursive/)
    end
  end
end
