# frozen_string_literal: true

# MessagePack::Timestamp (ext type -1) and the MessagePack::Time helpers. docs/compatibility.md §12.

RSpec.describe MessagePack::Timestamp do
  describe "class" do
    it "has the documented constants" do
      expect(MessagePack::Timestamp::TYPE).to eq(-1)
      expect(MessagePack::Timestamp::TIMESTAMP32_MAX_SEC).to eq(2**32 - 1)
      expect(MessagePack::Timestamp::TIMESTAMP64_MAX_SEC).to eq(2**34 - 1)
    end

    it "stores sec and nsec without validation" do
      t = MessagePack::Timestamp.new(-5, 2_000_000_000)
      expect([t.sec, t.nsec]).to eq([-5, 2_000_000_000])
      expect(MessagePack::Timestamp.new(nil, "x").sec).to be_nil
    end

    it "compares class, sec and nsec with ==" do
      expect(MessagePack::Timestamp.new(1, 2)).to eq(MessagePack::Timestamp.new(1, 2))
      expect(MessagePack::Timestamp.new(1, 2)).not_to eq(MessagePack::Timestamp.new(1, 3))
      expect(MessagePack::Timestamp.new(1, 2)).not_to eq(MessagePack::Timestamp.new(2, 2))
      expect(MessagePack::Timestamp.new(1, 2)).not_to eq(Struct.new(:sec, :nsec).new(1, 2))
    end

    it "does not override eql? or hash" do
      a = MessagePack::Timestamp.new(1, 2)
      b = MessagePack::Timestamp.new(1, 2)
      expect(a.eql?(b)).to be(false)
      expect(MessagePack::Timestamp.instance_method(:hash).owner).to eq(Kernel)
    end
  end

  describe ".to_msgpack_ext" do
    {
      [0, 0] => "00 00 00 00",
      [1, 0] => "00 00 00 01",
      [2**32 - 1, 0] => "ff ff ff ff",
      [2**32, 0] => "00 00 00 01 00 00 00 00",
      [1, 1] => "00 00 00 04 00 00 00 01",
      [0, 999_999_999] => "ee 6b 27 fc 00 00 00 00",
      [2**34 - 1, 999_999_999] => "ee 6b 27 ff ff ff ff ff",
      [2**34, 0] => "00 00 00 00 00 00 00 04 00 00 00 00",
      [-1, 0] => "00 00 00 00 ff ff ff ff ff ff ff ff",
      [-1, 999_999_999] => "3b 9a c9 ff ff ff ff ff ff ff ff ff",
      [-2**63, 0] => "00 00 00 00 80 00 00 00 00 00 00 00",
      [2**63 - 1, 1] => "00 00 00 01 7f ff ff ff ff ff ff ff",
    }.each do |(sec, nsec), h|
      it "encodes [#{sec}, #{nsec}] as #{h.split.size} bytes" do
        out = MessagePack::Timestamp.to_msgpack_ext(sec, nsec)
        expect(out).to eq(bin(h))
        expect(out.encoding).to eq(Encoding::BINARY)
        expect(MessagePack::Timestamp.new(sec, nsec).to_msgpack_ext).to eq(bin(h))
        expect(MessagePack::Timestamp.from_msgpack_ext(bin(h))).to eq(MessagePack::Timestamp.new(sec, nsec))
      end
    end
  end

  describe ".from_msgpack_ext" do
    it "raises MalformedFormatError for other payload sizes" do
      [0, 1, 2, 3, 5, 7, 9, 11, 13, 16].each do |n|
        expect { MessagePack::Timestamp.from_msgpack_ext("\x00".b * n) }
          .to raise_error(MessagePack::MalformedFormatError, "Invalid timestamp data size: #{n}")
      end
    end

    it "does not check nsec < 10**9" do
      t = MessagePack::Timestamp.from_msgpack_ext(bin("ff ff ff ff 00 00 00 00 00 00 00 00"))
      expect(t.nsec).to eq(2**32 - 1)
      t = MessagePack::Timestamp.from_msgpack_ext(bin("ff ff ff fc 00 00 00 00"))
      expect(t.nsec).to eq(2**30 - 1)
    end
  end

  describe "registered for MessagePack::Timestamp" do
    let(:factory) do
      MessagePack::Factory.new.tap { |f| f.register_type(MessagePack::Timestamp::TYPE, MessagePack::Timestamp) }
    end

    it "round-trips Timestamps with the exact encodings" do
      {
        [1_514_862_245, 0] => "d6 ff 5a 4a f6 a5",
        [1_514_862_245, 678_901_234] => "d7 ff a1 dc d7 c8 5a 4a f6 a5",
        [-1, 0] => "c7 0c ff 00 00 00 00 ff ff ff ff ff ff ff ff",
      }.each do |(sec, nsec), h|
        ts = MessagePack::Timestamp.new(sec, nsec)
        expect(factory.dump(ts)).to eq(bin(h))
        expect(factory.load(bin(h))).to eq(ts)
      end
    end
  end

  describe "with Time (MessagePack::Time::Packer/Unpacker)" do
    let(:factory) do
      MessagePack::Factory.new.tap do |f|
        f.register_type(MessagePack::Timestamp::TYPE, Time,
                        packer: MessagePack::Time::Packer, unpacker: MessagePack::Time::Unpacker)
      end
    end

    it "has Packer and Unpacker lambdas and TIME_AT_3_AVAILABLE" do
      expect(MessagePack::Time).to be_instance_of(Module)
      expect(MessagePack::Time::Packer).to be_a(Proc).and be_lambda
      expect(MessagePack::Time::Unpacker).to be_a(Proc).and be_lambda
      expect(MessagePack::Time::TIME_AT_3_AVAILABLE).to be(true)
    end

    it "packs whole seconds as fixext4 D6 FF" do
      t = Time.at(1_514_862_245)
      expect(factory.dump(t)).to eq(bin("d6 ff 5a 4a f6 a5"))
      expect(factory.load(factory.dump(t))).to eq(t)
    end

    it "packs nanoseconds as fixext8 D7 FF" do
      t = Time.at(1_514_862_245, 678_901_234, :nanosecond)
      expect(factory.dump(t)).to eq(bin("d7 ff a1 dc d7 c8 5a 4a f6 a5"))
      out = factory.load(factory.dump(t))
      expect(out).to eq(t)
      expect(out.nsec).to eq(678_901_234)
    end

    it "packs seconds >= 2**34 or negative as ext8 C7 0C FF" do
      t = Time.at(2**34)
      expect(factory.dump(t)).to eq(bin("c7 0c ff 00 00 00 00 00 00 00 04 00 00 00 00"))
      expect(factory.load(factory.dump(t))).to eq(t)
      t = Time.at(-1, 999_999_999, :nanosecond)
      expect(factory.dump(t)).to eq(bin("c7 0c ff 3b 9a c9 ff ff ff ff ff ff ff ff ff"))
      expect(factory.load(factory.dump(t))).to eq(t)
    end

    it "uses the timestamp32/64/96 boundaries" do
      expect(factory.dump(Time.utc(2106, 2, 7, 6, 28, 15)).bytesize).to eq(6)
      expect(factory.dump(Time.utc(2106, 2, 7, 6, 28, 16)).bytesize).to eq(10)
      expect(factory.dump(Time.at(2**34 - 1, 999_999_999, :nanosecond)).bytesize).to eq(10)
      expect(factory.dump(Time.utc(2514, 5, 30, 1, 53, 4)).bytesize).to eq(15)
      expect(factory.dump(Time.at(-2**63)).bytesize).to eq(15)
      expect(factory.dump(Time.at(2**63 - 1)).bytesize).to eq(15)
    end

    it "round-trips extreme and ordinary times" do
      [Time.at(0), Time.utc(2200), Time.at(-2**63), Time.at(2**63 - 1), Time.at(1, 1, :nanosecond),
       Time.local(2019, 6, 17, 1, 2, 3, 123_456)].each do |t|
        expect(factory.load(factory.dump(t))).to eq(t)
      end
    end

    it "unpacks to a local Time" do
      out = factory.load(bin("d6 ff 00 00 00 01"))
      expect(out).to be_a(Time)
      expect(out.utc?).to be(false)
      expect(out.to_i).to eq(1)
      expect(out.utc_offset).to eq(Time.at(1).utc_offset)
    end

    it "raises MalformedFormatError for a bad payload size" do
      expect { factory.load(bin("d5 ff 00 00")) }
        .to raise_error(MessagePack::MalformedFormatError, "Invalid timestamp data size: 2")
    end

    it "round-trips Time inside containers" do
      obj = { "at" => [Time.at(10), Time.at(20, 5, :nanosecond)] }
      expect(factory.load(factory.dump(obj))).to eq(obj)
    end
  end

  it "is not registered by default" do
    expect { MessagePack.unpack(bin("d6 ff 00 00 00 01")) }.to raise_error(MessagePack::UnknownExtTypeError)
    expect { MessagePack.pack(Time.at(0)) }.to raise_error(NoMethodError)
    expect { MessagePack.pack(MessagePack::Timestamp.new(0, 0)) }.to raise_error(NoMethodError)
  end
end
