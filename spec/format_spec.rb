# frozen_string_literal: true

# Wire formats of scalars both ways: nil, booleans, every integer form at its
# boundaries, floats (float32/float64), ext framing. docs/compatibility.md §7, §8, §10.
# Strings, binaries, containers, Symbols and compatibility mode: format_strings_spec.rb.

RSpec.describe "MessagePack wire format (scalars)" do
  def roundtrip(obj)
    MessagePack.unpack(MessagePack.pack(obj))
  end

  describe "nil and booleans" do
    { nil => "c0", false => "c2", true => "c3" }.each do |value, h|
      it "packs #{value.inspect} as #{h} and back" do
        expect(MessagePack.pack(value)).to eq(bin(h))
        expect(MessagePack.unpack(bin(h))).to equal(value)
      end
    end
  end

  describe "integers" do
    PACK_INTEGERS = [
      # positive fixint
      [0, "00"], [1, "01"], [127, "7f"],
      # positive values always use the unsigned forms
      [128, "cc 80"], [255, "cc ff"],
      [256, "cd 01 00"], [65_535, "cd ff ff"],
      [65_536, "ce 00 01 00 00"], [2**31 - 1, "ce 7f ff ff ff"], [2**31, "ce 80 00 00 00"],
      [2**32 - 1, "ce ff ff ff ff"],
      [2**32, "cf 00 00 00 01 00 00 00 00"],
      [2**62 - 1, "cf 3f ff ff ff ff ff ff ff"], # largest Fixnum on 64-bit
      [2**62, "cf 40 00 00 00 00 00 00 00"],     # smallest positive Bignum
      [2**63 - 1, "cf 7f ff ff ff ff ff ff ff"],
      [2**63, "cf 80 00 00 00 00 00 00 00"],
      [2**64 - 1, "cf ff ff ff ff ff ff ff ff"],
      # negative fixint
      [-1, "ff"], [-31, "e1"], [-32, "e0"],
      # signed forms
      [-33, "d0 df"], [-128, "d0 80"],
      [-129, "d1 ff 7f"], [-32_768, "d1 80 00"],
      [-32_769, "d2 ff ff 7f ff"], [-2**31, "d2 80 00 00 00"],
      [-2**31 - 1, "d3 ff ff ff ff 7f ff ff ff"],
      [-2**32, "d3 ff ff ff ff 00 00 00 00"],
      [-2**62, "d3 c0 00 00 00 00 00 00 00"],     # smallest Fixnum on 64-bit
      [-2**62 - 1, "d3 bf ff ff ff ff ff ff ff"], # largest negative Bignum
      [-2**63, "d3 80 00 00 00 00 00 00 00"],
    ].freeze

    PACK_INTEGERS.each do |value, h|
      it "packs #{value} as #{h} and unpacks it back" do
        expect(MessagePack.pack(value)).to eq(bin(h))
        out = MessagePack.unpack(bin(h))
        expect(out).to be_a(Integer)
        expect(out).to eq(value)
      end
    end

    it "packs Bignums with small values in the smallest form" do
      PACK_INTEGERS.first(12).each do |value, h|
        bignum = (1 << 64).coerce(value)[0]
        expect(MessagePack.pack(bignum)).to eq(bin(h))
      end
    end

    it "raises RangeError above 2**64-1" do
      expect { MessagePack.pack(2**64) }
        .to raise_error(RangeError, either_quote("bignum too big to convert into `unsigned long long'"))
      expect { MessagePack.pack(10**30) }.to raise_error(RangeError)
    end

    it "raises RangeError below -2**63" do
      expect { MessagePack.pack(-2**63 - 1) }
        .to raise_error(RangeError, either_quote("bignum too big to convert into `long long'"))
      expect { MessagePack.pack(-10**30) }.to raise_error(RangeError)
    end

    DECODE_INTEGERS = {
      "cc 00" => 0, "cc 7f" => 127, "cd 00 01" => 1, "cd ff ff" => 65_535,
      "ce 00 00 00 05" => 5, "ce ff ff ff ff" => 2**32 - 1,
      "cf 00 00 00 00 00 00 00 09" => 9, "cf ff ff ff ff ff ff ff ff" => 2**64 - 1,
      "cf 80 00 00 00 00 00 00 00" => 2**63,
      "d0 7f" => 127, "d0 00" => 0, "d0 ff" => -1, "d0 80" => -128,
      "d1 7f ff" => 32_767, "d1 ff ff" => -1, "d1 80 00" => -32_768,
      "d2 7f ff ff ff" => 2**31 - 1, "d2 ff ff ff ff" => -1, "d2 80 00 00 00" => -2**31,
      "d3 7f ff ff ff ff ff ff ff" => 2**63 - 1, "d3 ff ff ff ff ff ff ff ff" => -1,
      "d3 80 00 00 00 00 00 00 00" => -2**63,
    }.freeze

    it "decodes every integer form including non-minimal encodings" do
      DECODE_INTEGERS.each do |h, value|
        out = MessagePack.unpack(bin(h))
        expect(out).to be_a(Integer), h
        expect(out).to eq(value), h
      end
    end

    it "decodes every positive and negative fixint" do
      (0..127).each { |i| expect(MessagePack.unpack(i.chr.b)).to eq(i) }
      (0xe0..0xff).each { |b| expect(MessagePack.unpack(b.chr.b)).to eq(b - 256) }
    end

    it "round-trips every power-of-two boundary in the allowed range" do
      values = (0..64).flat_map { |e| [2**e - 1, 2**e, -(2**e), -(2**e) - 1] }
      values.select! { |v| v >= -2**63 && v <= 2**64 - 1 }
      values.each { |v| expect(roundtrip(v)).to eq(v) }
    end

    it "packs integers through Packer#write_int" do
      expect(MessagePack::Packer.new.write_int(-33).to_s).to eq(bin("d0 df"))
      expect(MessagePack::Packer.new.write_int(2**64 - 1).to_s).to eq(bin("cf ff ff ff ff ff ff ff ff"))
    end
  end

  describe "floats" do
    it "packs Floats as float64 (CB)" do
      expect(MessagePack.pack(1.0)).to eq(bin("cb 3f f0 00 00 00 00 00 00"))
      expect(MessagePack.pack(0.5)).to eq(bin("cb 3f e0 00 00 00 00 00 00"))
      expect(MessagePack.pack(-2.1)).to eq(bin("cb c0 00 cc cc cc cc cc cd"))
      expect(MessagePack.pack(3.14)).to eq(bin("cb 40 09 1e b8 51 eb 85 1f"))
      expect(MessagePack.pack(0.0)).to eq(bin("cb 00 00 00 00 00 00 00 00"))
      expect(MessagePack.pack(-0.0)).to eq(bin("cb 80 00 00 00 00 00 00 00"))
    end

    it "packs NaN and infinities as float64" do
      expect(MessagePack.pack(Float::NAN)).to eq(bin("cb 7f f8 00 00 00 00 00 00"))
      expect(MessagePack.pack(Float::INFINITY)).to eq(bin("cb 7f f0 00 00 00 00 00 00"))
      expect(MessagePack.pack(-Float::INFINITY)).to eq(bin("cb ff f0 00 00 00 00 00 00"))
    end

    it "packs extreme Floats exactly" do
      [Float::MAX, Float::MIN, -Float::MAX, 5e-324, Float::EPSILON].each do |f|
        expect(MessagePack.pack(f)).to eq("\xCB".b + [f].pack("G"))
        expect(roundtrip(f)).to eq(f)
      end
    end

    it "decodes float32 (CA) and float64 (CB) to Float" do
      expect(MessagePack.unpack(bin("ca 3f 00 00 00"))).to eq(0.5)
      expect(MessagePack.unpack(bin("ca 3f 00 00 00"))).to be_a(Float)
      expect(MessagePack.unpack(bin("ca 40 48 f5 c3"))).to eq([3.14].pack("g").unpack1("g"))
      expect(MessagePack.unpack(bin("cb 3f e0 00 00 00 00 00 00"))).to eq(0.5)
      expect(MessagePack.unpack(bin("ca 7f c0 00 00"))).to be_nan
      expect(MessagePack.unpack(bin("ca ff 80 00 00"))).to eq(-Float::INFINITY)
      expect(MessagePack.unpack(bin("cb 7f f8 00 00 00 00 00 00"))).to be_nan
      neg_zero = MessagePack.unpack(bin("cb 80 00 00 00 00 00 00 00"))
      expect(neg_zero).to eq(0.0)
      expect(1.0 / neg_zero).to eq(-Float::INFINITY)
    end

    it "packs float32 with Packer#write_float32" do
      {
        3.14 => "ca 40 48 f5 c3",
        Math::PI * 1_000_000_000_000_000_000 => "ca 5e 2e 64 b7",
        -2.1 => "ca c0 06 66 66",
        123 => "ca 42 f6 00 00",
        0.5 => "ca 3f 00 00 00",
        1e40 => "ca 7f 80 00 00",
        2**70 => "ca 62 80 00 00",
        1r / 4 => "ca 3e 80 00 00",
      }.each do |value, h|
        expect(MessagePack::Packer.new.write_float32(value).to_s).to eq(bin(h)), value.inspect
      end
    end

    it "packs any Numeric as float64 with Packer#write_float" do
      expect(MessagePack::Packer.new.write_float(1).to_s).to eq(bin("cb 3f f0 00 00 00 00 00 00"))
      expect(MessagePack::Packer.new.write_float(1r / 2).to_s).to eq(bin("cb 3f e0 00 00 00 00 00 00"))
      expect(MessagePack::Packer.new.write_float(2**64).to_s).to eq(bin("cb 43 f0 00 00 00 00 00 00"))
    end
  end

  describe "ext framing" do
    {
      1 => "d4", 2 => "d5", 4 => "d6", 8 => "d7", 16 => "d8",
    }.each do |len, lead|
      it "uses fixext #{lead} for #{len}-byte payloads" do
        payload = "z" * len
        expected = bin("#{lead} 05") + payload
        expect(MessagePack::ExtensionValue.new(5, payload).to_msgpack).to eq(expected)
        out = MessagePack.unpack(expected, allow_unknown_ext: true)
        expect(out).to eq(MessagePack::ExtensionValue.new(5, payload.b))
      end
    end

    {
      0 => "c7 00", 3 => "c7 03", 5 => "c7 05", 15 => "c7 0f", 17 => "c7 11", 255 => "c7 ff",
      256 => "c8 01 00", 65_535 => "c8 ff ff", 65_536 => "c9 00 01 00 00",
    }.each do |len, header|
      it "uses #{header.split.first} for #{len}-byte payloads" do
        payload = "q" * len
        expected = bin("#{header} 7f") + payload
        expect(MessagePack::ExtensionValue.new(127, payload).to_msgpack).to eq(expected)
        out = MessagePack.unpack(expected, allow_unknown_ext: true)
        expect(out).to eq(MessagePack::ExtensionValue.new(127, payload.b))
      end
    end

    it "writes the type as a signed byte" do
      expect(MessagePack::ExtensionValue.new(-128, "a").to_msgpack).to eq(bin("d4 80 61"))
      expect(MessagePack::ExtensionValue.new(-1, "ab").to_msgpack).to eq(bin("d5 ff 61 62"))
      expect(MessagePack.unpack(bin("d4 80 61"), allow_unknown_ext: true).type).to eq(-128)
      expect(MessagePack.unpack(bin("d4 ff 61"), allow_unknown_ext: true).type).to eq(-1)
    end

    it "decodes non-minimal ext headers" do
      {
        "c7 01 03 61" => [3, "a"], "c8 00 01 03 61" => [3, "a"], "c9 00 00 00 01 03 61" => [3, "a"],
        "c8 00 00 09" => [9, ""], "c9 00 00 00 00 09" => [9, ""],
      }.each do |h, (type, payload)|
        out = MessagePack.unpack(bin(h), allow_unknown_ext: true)
        expect(out).to eq(MessagePack::ExtensionValue.new(type, payload.b)), h
        expect(out.payload.encoding).to eq(Encoding::BINARY)
      end
    end

    it "writes a registered ext payload with the same framing" do
      klass = Struct.new(:bytes)
      factory = MessagePack::Factory.new
      factory.register_type(3, klass, packer: :bytes.to_proc, unpacker: ->(data) { klass.new(data) })
      [0, 1, 2, 3, 4, 8, 16, 17, 255, 256, 65_536].each do |len|
        bytes = factory.dump(klass.new("x" * len))
        expect(bytes).to eq(MessagePack::ExtensionValue.new(3, "x" * len).to_msgpack), len.to_s
        expect(factory.load(bytes)).to eq(klass.new("x" * len))
      end
    end
  end

  describe "reserved byte" do
    it "rejects C1 with MalformedFormatError" do
      expect { MessagePack.unpack(bin("c1")) }.to raise_error(MessagePack::MalformedFormatError)
      expect { MessagePack.unpack(bin("92 01 c1")) }.to raise_error(MessagePack::MalformedFormatError)
    end
  end
end
