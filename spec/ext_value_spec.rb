# frozen_string_literal: true

# MessagePack::ExtensionValue. docs/compatibility.md §4.

RSpec.describe MessagePack::ExtensionValue do
  subject(:ext) { described_class.new(1, "data") }

  it "is an anonymous Struct with type and payload" do
    expect(described_class.superclass).to equal(Struct)
    expect(described_class.members).to eq(%i[type payload])
    expect(ext.to_a).to eq([1, "data"])
  end

  it "has Struct readers and setters" do
    ext.type = 2
    ext.payload = "a"
    expect([ext.type, ext.payload]).to eq([2, "a"])
  end

  it "has Struct ==, eql? and hash" do
    same = described_class.new(1, "data")
    expect(ext).to eq(same)
    expect(ext).to eql(same)
    expect(ext.hash).to eq(same.hash)
    expect(ext).not_to eq(described_class.new(2, "data"))
    expect(ext).not_to eql(described_class.new(1, "value"))
    expect({ ext => 1 }[same]).to eq(1)
  end

  it "dups into an independent copy" do
    copy = ext.dup
    copy.type = 2
    copy.payload = "data2"
    expect([ext.type, ext.payload]).to eq([1, "data"])
  end

  describe "#to_msgpack" do
    it "serializes with the ext framing" do
      expect(described_class.new(1, "aa").to_msgpack).to eq(bin("d5 01 61 61"))
      expect(described_class.new(1, "a" * 18).to_msgpack).to eq(bin("c7 12 01") + "a" * 18)
      expect(described_class.new(1, "a" * 65_540).to_msgpack).to eq(bin("c9 00 01 00 04 01") + "a" * 65_540)
      expect(described_class.new(-1, "").to_msgpack).to eq(bin("c7 00 ff"))
    end

    it "writes into a packer and returns it" do
      pk = MessagePack::Packer.new
      expect(described_class.new(1, "aa").to_msgpack(pk)).to equal(pk)
      expect(pk.buffer.to_s).to eq(bin("d5 01 61 61"))
    end

    it "is packed as ext inside containers" do
      expect(MessagePack.pack([described_class.new(5, "z")])).to eq(bin("91 d4 05 7a"))
      expect(MessagePack.pack({ "e" => described_class.new(-128, "z") })).to eq(bin("81 a1 65 d4 80 7a"))
    end

    it "converts the payload to a String" do
      s = Object.new
      def s.to_str = "pq"
      expect(described_class.new(3, s).to_msgpack).to eq(bin("d5 03 70 71"))
    end

    it "raises RangeError for types outside -128..127" do
      expect { described_class.new(128, "a").to_msgpack }
        .to raise_error(RangeError, either_quote("integer 128 too big to convert to `signed char'"))
      expect { described_class.new(-129, "a").to_msgpack }
        .to raise_error(RangeError, either_quote("integer -129 too big to convert to `signed char'"))
      [-65_540, -(2**40), 65_540, 2**40, 2**70].each do |type|
        expect { described_class.new(type, "a").to_msgpack }.to raise_error(RangeError), type.to_s
      end
    end

    it "raises TypeError for a non-Integer type" do
      expect { described_class.new("1", "a").to_msgpack }.to raise_error(TypeError)
      expect { described_class.new(nil, "a").to_msgpack }.to raise_error(TypeError)
    end
  end

  describe "as an unpack result" do
    it "is returned only with allow_unknown_ext" do
      expect { MessagePack.unpack(bin("d4 09 00")) }.to raise_error(MessagePack::UnknownExtTypeError)
      out = MessagePack.unpack(bin("d4 09 00"), allow_unknown_ext: true)
      expect(out).to be_instance_of(described_class)
      expect(out).to eq(described_class.new(9, "\x00".b))
    end

    it "has a binary payload, '' for length 0" do
      out = MessagePack.unpack(bin("c7 00 09"), allow_unknown_ext: true)
      expect(out.payload).to eq("")
      expect(out.payload.encoding).to eq(Encoding::BINARY)
      out = MessagePack.unpack(bin("c7 02 f7 c3 a9"), allow_unknown_ext: true)
      expect(out.type).to eq(-9)
      expect(out.payload).to eq("\xC3\xA9".b)
      expect(out.payload.encoding).to eq(Encoding::BINARY)
    end

    it "round-trips through pack" do
      [described_class.new(0, ""), described_class.new(127, "x" * 300), described_class.new(-128, "y" * 16)].each do |e|
        expect(MessagePack.unpack(MessagePack.pack(e), allow_unknown_ext: true)).to eq(e)
      end
    end
  end
end
