# frozen_string_literal: true

# Memory: mapped-file input (Unpacker.open, MessagePack.load_file, Factory#open_file /
# #load_file). msgpack-rs only (skipped in oracle runs).
# Shared constants and helpers: spec/support/memory.rb.

require "timeout"

RSpec.describe "Memory", if: !MSGPACK_SPEC_ORACLE do
  include_context "memory spec files"

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

    it "ignores read_reference_threshold (every String is copied out of the mapping)" do
      single = write_file("one.msgpack", MessagePack.pack(records(3)))
      [-1, "x", true, 2**64].each do |threshold|
        expect(MessagePack.load_file(single, read_reference_threshold: threshold)).to eq(records(3))
        expect(MessagePack::Unpacker.open(single, read_reference_threshold: threshold, &:read)).to eq(records(3))
      end
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
