# frozen_string_literal: true

# Hostile input: the decoder limits. max_depth (default 128, like the C gem; exceeding it
# raises MessagePack::StackError) and max_array_len, max_map_len, max_str_len, max_bin_len,
# max_ext_len (msgpack-rs options, default unlimited; skipped in the oracle run): a length
# above its limit raises MalformedFormatError naming the option, as soon as the header is
# read. Helpers and the other topics: spec/support/hostile.rb.

require "stringio"

RSpec.describe "Hostile input" do
  include HostileHelpers

  rs_only = HostileHelpers::RS_ONLY

  describe "decoder limits" do
    describe "max_depth" do
      entry_points = {
        "MessagePack.unpack" => ->(data, opts) { MessagePack.unpack(data, opts) },
        "MessagePack.load" => ->(data, opts) { MessagePack.load(data, opts) },
        "Unpacker#read" => lambda { |data, opts|
          u = MessagePack::Unpacker.new(opts)
          u.feed(data)
          u.read
        },
        "Unpacker.new(io, options)#read" => ->(data, opts) { MessagePack::Unpacker.new(StringIO.new(data), opts).read },
        "Unpacker#skip" => lambda { |data, opts|
          u = MessagePack::Unpacker.new(opts)
          u.feed(data)
          u.skip
          :skipped
        },
        "Unpacker#feed_each" => ->(data, opts) { MessagePack::Unpacker.new(opts).feed_each(data).to_a.fetch(0) },
        "Factory#load" => ->(data, opts) { MessagePack::Factory.new.load(data, opts) },
        "Factory#unpacker" => lambda { |data, opts|
          u = MessagePack::Factory.new.unpacker(opts)
          u.feed(data)
          u.read
        },
        "Pool#load" => ->(data, opts) { MessagePack::Factory.new.pool(1, **opts).load(data) },
      }

      entry_points.each do |name, decode|
        it "defaults to 128 nested non-empty containers through #{name}" do
          skip "no Factory#pool in this C gem" if name == "Pool#load" && !MessagePack::Factory.method_defined?(:pool)

          expect(decode.call(nested(128, "91"), {})).not_to be_nil
          expect(decode.call(nested(128, "81 01"), {})).not_to be_nil
          expect { decode.call(nested(129, "91"), {}) }.to raise_error(MessagePack::StackError, "stack level too deep")
          expect { decode.call(nested(129, "81 01"), {}) }.to raise_error(MessagePack::StackError)
        end

        it "honours max_depth: 3 through #{name}", skip: rs_only do
          expect(decode.call(nested(3, "91"), max_depth: 3)).not_to be_nil
          expect { decode.call(nested(4, "91"), max_depth: 3) }.to raise_error(MessagePack::StackError)
        end
      end

      it "does not count empty containers" do
        expect(MessagePack.unpack(nested(128, "91", "90"))).to be_a(Array)
        expect(MessagePack.unpack(nested(128, "91", "80"))).to be_a(Array)
      end

      it "counts map keys as well as values (a container as a key is one level deeper)" do
        key_chain = ->(n) { bin("81") * n + bin("01") + bin("01") * n } # {{{1=>1}=>1}=>1} ...
        expect(MessagePack.unpack(key_chain.call(128))).to be_a(Hash)
        expect { MessagePack.unpack(key_chain.call(129)) }.to raise_error(MessagePack::StackError)
      end

      it "allows deeper nesting when raised (the decoder does not recurse on the native stack)", skip: rs_only do
        obj = MessagePack.unpack(nested(100_000, "91"), max_depth: 100_000)
        depth = 0
        while obj.is_a?(Array)
          obj = obj[0]
          depth += 1
        end
        expect([depth, obj]).to eq([100_000, 1])
      end

      it "max_depth: 0 accepts scalars and empty containers only", skip: rs_only do
        expect(MessagePack.unpack(bin("01"), max_depth: 0)).to eq(1)
        expect(MessagePack.unpack(bin("90"), max_depth: 0)).to eq([])
        expect { MessagePack.unpack(bin("91 01"), max_depth: 0) }.to raise_error(MessagePack::StackError)
      end
    end

    describe "length limits", skip: rs_only do
      # [option, encodings of a 3-element/3-byte object in every format, same with 2]
      cases = {
        max_array_len: [%w[93010203 dc0003010203 dd00000003010203], %w[920102 dc00020102]],
        max_map_len: [%w[83010102020303 de0003010102020303 df00000003010102020303], %w[8201010202]],
        max_str_len: [%w[a3616263 d903616263 da0003616263 db00000003616263], %w[a26162 d9026162]],
        max_bin_len: [%w[c403616263 c50003616263 c600000003616263], %w[c4026162]],
        max_ext_len: [%w[c70301616263 c8000301616263 c90000000301616263], %w[d5016162 c702016162]],
      }

      cases.each do |option, (too_long, ok)|
        it "#{option}: 2 accepts length 2 and rejects length 3 in every format with MalformedFormatError" do
          opts = { option => 2, allow_unknown_ext: true }
          ok.each { |h| expect { MessagePack.unpack(bin(h), opts) }.not_to raise_error }
          too_long.each do |h|
            expect { MessagePack.unpack(bin(h), opts) }
              .to raise_error(MessagePack::MalformedFormatError, /#{option}/)
            expect { MessagePack.unpack(bin(h), opts) }.to raise_error(MessagePack::UnpackError)
          end
        end

        it "#{option} is checked on the header, before the payload arrives" do
          opts = { option => 2, allow_unknown_ext: true }
          too_long.each do |h|
            header_only = bin(h)[0, bin(h).bytesize - 3] # drop the 3-byte payload / 3 elements
            header_only = bin(h)[0, bin(h).bytesize - 6] if option == :max_map_len
            u = MessagePack::Unpacker.new(opts)
            u.feed(header_only)
            expect { u.read }.to raise_error(MessagePack::MalformedFormatError, /#{option}/)
          end
        end
      end

      it "the message names the option, the declared length and the limit" do
        expect { MessagePack.unpack(bin("dd ff ff ff ff"), max_array_len: 10) }
          .to raise_error(MessagePack::MalformedFormatError, "length 4294967295 exceeds max_array_len (10)")
      end

      it "applies to map keys, nested values and ext payloads whatever is registered" do
        expect { MessagePack.unpack(bin("81 a3 616263 01"), max_str_len: 2) }
          .to raise_error(MessagePack::MalformedFormatError, /max_str_len/)
        expect { MessagePack.unpack(bin("91 91 93 01 02 03"), max_array_len: 2) }
          .to raise_error(MessagePack::MalformedFormatError, /max_array_len/)
        f = MessagePack::Factory.new
        f.register_type(1, Object, unpacker: ->(data) { data })
        expect(f.load(bin("d5 01 6162"), max_ext_len: 2)).to eq("ab")
        expect { f.load(bin("d6 01 61626364"), max_ext_len: 2) }.to raise_error(MessagePack::MalformedFormatError, /max_ext_len/)
        f.register_type(-1, Time, packer: MessagePack::Time::Packer, unpacker: MessagePack::Time::Unpacker)
        expect { f.load(MessagePack::Timestamp.to_msgpack_ext(1, 0).then { |p| bin("d6 ff") + p }, max_ext_len: 3) }
          .to raise_error(MessagePack::MalformedFormatError, /max_ext_len/)
      end

      it "0 allows only empty values" do
        expect(MessagePack.unpack(bin("90"), max_array_len: 0)).to eq([])
        expect(MessagePack.unpack(bin("80"), max_map_len: 0)).to eq({})
        expect(MessagePack.unpack(bin("a0"), max_str_len: 0)).to eq("")
        expect(MessagePack.unpack(bin("c4 00"), max_bin_len: 0)).to eq("".b)
        expect { MessagePack.unpack(bin("a1 61"), max_str_len: 0) }.to raise_error(MessagePack::MalformedFormatError)
      end

      it "is accepted by every constructor and loader" do
        data = bin("93 01 02 03")
        opts = { max_array_len: 2 }
        f = MessagePack::Factory.new
        loaders = [
          -> { MessagePack.unpack(data, opts) },
          -> { MessagePack.load(data, opts) },
          -> { MessagePack::Unpacker.new(opts).feed(data).read },
          -> { MessagePack::Unpacker.new(opts).feed(data).skip },
          -> { MessagePack::Unpacker.new(opts).feed_each(data) { nil } },
          -> { MessagePack::Unpacker.new(StringIO.new(data), opts).read },
          -> { f.load(data, opts) },
          -> { f.unpacker(opts).feed(data).read },
          -> { f.unpacker(StringIO.new(data), opts).read },
          -> { f.pool(1, **opts).load(data) },
          -> { MessagePack::DefaultFactory.load(data, opts) },
        ]
        loaders.each_with_index do |load, i|
          expect { load.call }.to raise_error(MessagePack::MalformedFormatError, /max_array_len/), "loader #{i}"
        end
      end

      it "is unlimited by default (memory is only committed for bytes that arrived)" do
        big = "x" * 3_000_000
        expect(MessagePack.unpack(MessagePack.pack(big)).bytesize).to eq(3_000_000)
        expect(MessagePack.unpack(MessagePack.pack(Array.new(100_000, 1))).size).to eq(100_000)
        expect(MessagePack.unpack(MessagePack.pack((1..70_000).to_h { |i| [i, i] })).size).to eq(70_000)
        expect(MessagePack.unpack(bin("c9 00 01 00 00 05") + "z".b * 65_536, allow_unknown_ext: true).payload.bytesize)
          .to eq(65_536)
      end

      it "nil means the default; other option values are validated" do
        expect(MessagePack.unpack(nested(128, "91"), max_depth: nil)).to be_a(Array)
        expect(MessagePack.unpack(bin("93 01 02 03"), max_array_len: nil)).to eq([1, 2, 3])
        expect { MessagePack.unpack(bin("90"), max_array_len: -1) }.to raise_error(RangeError)
        expect { MessagePack.unpack(bin("90"), max_depth: "3") }.to raise_error(TypeError)
        # limits above 2^32-1 mean "no limit" for lengths (a length never exceeds 2^32-1)
        expect(MessagePack.unpack(bin("93 01 02 03"), max_array_len: 2**40)).to eq([1, 2, 3])
      end

      it "keeps the limits across reset" do
        u = MessagePack::Unpacker.new(max_str_len: 1)
        u.feed(bin("a1 61"))
        expect(u.read).to eq("a")
        u.reset
        u.feed(bin("a2 6162"))
        expect { u.read }.to raise_error(MessagePack::MalformedFormatError)
      end
    end
  end
end
