# frozen_string_literal: true

# Memory: MessagePack::CompactReport, compact! on Buffer, Packer, Unpacker and Factory, and
# the MessagePack.compact! cascade. msgpack-rs only (skipped in oracle runs).
# Shared constants and helpers: spec/support/memory.rb. (Not named *compact*_spec.rb:
# script/ruby-checks runs those again in a process of their own, for GC compaction.)

RSpec.describe "Memory", if: !MSGPACK_SPEC_ORACLE do
  include_context "memory spec files"

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
end
