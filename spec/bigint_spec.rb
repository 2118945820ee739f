# frozen_string_literal: true

# MessagePack::Bigint (require "msgpack/bigint", since 1.5.0). docs/compatibility.md §13.

begin
  require "msgpack/bigint"
rescue LoadError
  # older C gems in the oracle run: every example here is tagged :since_1_5
end

RSpec.describe "MessagePack::Bigint", :since_1_5 do
  let(:bigint) { MessagePack::Bigint }

  it "is a module with the 32-bit chunk format" do
    expect(bigint).to be_instance_of(Module)
    expect(bigint::CHUNK_BITLENGTH).to eq(32)
    expect(bigint::FORMAT).to eq("CL>*")
  end

  {
    0 => "00",
    1 => "00 00 00 00 01",
    -1 => "01 00 00 00 01",
    2**32 - 1 => "00 ff ff ff ff",
    2**32 => "00 00 00 00 00 00 00 00 01",
    -(2**32) => "01 00 00 00 00 00 00 00 01",
    2**64 => "00 00 00 00 00 00 00 00 00 00 00 00 01",
    -(2**64 - 1) => "01 ff ff ff ff ff ff ff ff",
    0x0102030405060708090a0b0c => "00 09 0a 0b 0c 05 06 07 08 01 02 03 04",
    120_938_120_391_283_122_132_313 => "00 9f f4 55 59 11 92 9a 3f 00 00 19 9c",
    -21_903_120_391_203_912_391_023_920_332_103 => "01 2f b2 bd 47 bd de aa eb 74 cc 8a c1 00 00 01 14",
    210_290_021_321_301_203_912_933_021_323 => "00 c4 d8 96 8b 6d cb c7 03 a7 7b d4 22 00 00 00 02",
  }.each do |int, h|
    it "encodes #{int} as sign byte + little-endian-ordered 32-bit big-endian words" do
      out = MessagePack::Bigint.to_msgpack_ext(int)
      expect(out).to eq(bin(h))
      expect(out.encoding).to eq(Encoding::BINARY)
      expect(MessagePack::Bigint.from_msgpack_ext(bin(h))).to eq(int)
    end
  end

  it "round-trips seeded random huge integers" do
    rng = Random.new(99)
    200.times do
      int = rng.rand(2**rng.rand(1..2000)) * (rng.rand(2).zero? ? 1 : -1)
      expect(bigint.from_msgpack_ext(bigint.to_msgpack_ext(int))).to eq(int)
    end
  end

  describe "registered with oversized_integer_extension" do
    let(:factory) do
      MessagePack::Factory.new.tap do |f|
        f.register_type(0x01, Integer,
                        packer: MessagePack::Bigint.method(:to_msgpack_ext),
                        unpacker: MessagePack::Bigint.method(:from_msgpack_ext),
                        oversized_integer_extension: true)
      end
    end

    it "packs integers that fit in 64 bits natively" do
      expect(factory.dump(2**64 - 1)).to eq(bin("cf ff ff ff ff ff ff ff ff"))
      expect(factory.dump(-2**63 + 1)).to eq(bin("d3 80 00 00 00 00 00 00 01"))
      expect(factory.dump(0)).to eq(bin("00"))
    end

    it "packs larger integers through the ext with exact bytes" do
      expect(factory.dump(2**64)).to eq(bin("c7 0d 01 00 00 00 00 00 00 00 00 00 00 00 00 01"))
      expect(factory.dump(-(2**64))).to eq(MessagePack::ExtensionValue.new(1, MessagePack::Bigint.to_msgpack_ext(-(2**64))).to_msgpack)
      expect(factory.dump(10**40)).to eq(MessagePack::ExtensionValue.new(1, MessagePack::Bigint.to_msgpack_ext(10**40)).to_msgpack)
    end

    it "sends -2**63 through the ext too (quirk)", :c_quirk do
      expect(factory.dump(-2**63)).to eq(bin("c7 09 01 01 00 00 00 00 80 00 00 00"))
    end

    it "round-trips integers of every size" do
      [0, 1, -1, 2**63, 2**64 - 1, 2**64, -2**63, -2**63 - 1, 10**100, -10**100, 3**500].each do |i|
        expect(factory.load(factory.dump(i))).to eq(i)
        expect(factory.load(factory.dump([i, { "k" => i }]))).to eq([i, { "k" => i }])
      end
    end
  end
end
