# frozen_string_literal: true

# Hostile input: malformed input (c1, trailing bytes, empty input, every truncated prefix of
# a valid message or of a msgpack-test-suite vector), timestamps and invalid UTF-8 in str.
#
# Decision documented here: nanoseconds >= 10^9 in a timestamp are not rejected (the C gem
# doesn't check either): Timestamp.from_msgpack_ext keeps the raw nsec,
# MessagePack::Time::Unpacker lets Time.at carry the excess into seconds.
# Helpers and the other topics: spec/support/hostile.rb.

require "json"
require "stringio"

RSpec.describe "Hostile input" do
  include HostileHelpers

  rs_only = HostileHelpers::RS_ONLY

  describe "malformed input" do
    it "c1 raises MalformedFormatError \"invalid byte\" wherever it appears" do
      %w[c1 91c1 9201c1 81c101 8101c1 dc0002c1c1].each do |h|
        expect { MessagePack.unpack(bin(h)) }.to raise_error(MessagePack::MalformedFormatError, "invalid byte"), h
        u = MessagePack::Unpacker.new
        u.feed(bin(h))
        expect { u.read }.to raise_error(MessagePack::MalformedFormatError), h
        u = MessagePack::Unpacker.new
        u.feed(bin(h))
        expect { u.skip }.to raise_error(MessagePack::MalformedFormatError), h
      end
    end

    it "extra bytes after a complete object raise MalformedFormatError in MessagePack.unpack and Factory#load" do
      expect { MessagePack.unpack(bin("01 02")) }
        .to raise_error(MessagePack::MalformedFormatError, "1 extra bytes after the deserialized object")
      expect { MessagePack.unpack(bin("91 01 c1 c1 c1")) }
        .to raise_error(MessagePack::MalformedFormatError, "3 extra bytes after the deserialized object")
      expect { MessagePack::Factory.new.load(bin("c0 c0")) }.to raise_error(MessagePack::MalformedFormatError)
      expect { MessagePack::Unpacker.new.feed(bin("c0 c0")).full_unpack }
        .to raise_error(MessagePack::MalformedFormatError)
    end

    it "empty input raises EOFError" do
      expect { MessagePack.unpack("") }.to raise_error(EOFError)
      expect { MessagePack.unpack("".b, symbolize_keys: true) }.to raise_error(EOFError)
      expect { MessagePack::Factory.new.load("") }.to raise_error(EOFError)
      expect { MessagePack::Unpacker.new.read }.to raise_error(EOFError)
      expect { MessagePack::Unpacker.new.skip }.to raise_error(EOFError)
      expect { MessagePack::Unpacker.new(StringIO.new("")).read }.to raise_error(EOFError)
      expect(MessagePack::Unpacker.new.feed_each("") { raise "no object expected" }).to be_nil
    end

    # One message per format (and some nesting), each complete and alone.
    HOSTILE_FORMAT_SAMPLES = %w[
      c0 c2 c3 00 7f e0 ff
      cc80 cd0100 ce00010000 cf0000000100000000
      d080 d1ff7f d2ff7fffff d3ff7fffffffffffff
      ca3fc00000 cb3ff8000000000000
      a0 a3616263 d903616263 da0003616263 db00000003616263
      c40161 c5000161 c60000000161
      d40161 d5016162 d60161626364 d7016162636465666768 d801000102030405060708090a0b0c0d0e0f
      c70301616263 c8000301616263 c90000000301616263
      90 93010203 dc0003010203 dd00000003010203
      80 82a16101a16202 de0001a16101 df00000001a16101
      9291a161c0 81a16292c0c3
      d6ffffffffff d7ff0000000400000000 c70cff000000010000000000000001
    ].freeze

    it "every truncated prefix of a valid message raises EOFError, and feeding the rest resumes" do
      samples = HOSTILE_FORMAT_SAMPLES.map { |h| bin(h) }
      samples << MessagePack.pack({ "a" => [1, 2.5, "x" * 300, "y".b * 40, nil, { 1 => [true] }], "b" => -2**40 })
      samples.each do |data|
        whole = MessagePack.unpack(data, allow_unknown_ext: true)
        (0...data.bytesize).each do |n|
          prefix = data.byteslice(0, n)
          expect { MessagePack.unpack(prefix, allow_unknown_ext: true) }.to raise_error(EOFError), "#{hex(data)} [0, #{n}]"
          u = MessagePack::Unpacker.new(allow_unknown_ext: true)
          u.feed(prefix)
          expect { u.read }.to raise_error(EOFError)
          u.feed(data.byteslice(n..))
          expect(u.read).to eq(whole)
          s = MessagePack::Unpacker.new
          s.feed(prefix)
          expect { s.skip }.to raise_error(EOFError)
        end
      end
    end

    it "every truncated prefix of every msgpack-test-suite vector raises EOFError" do
      path = Fixtures::MSGPACK_TEST_SUITE_JSON
      expect(File.file?(path)).to be(true), "test vectors missing: #{path}"

      checked = 0
      JSON.parse(File.read(path)).each_value do |group|
        group.each do |entry|
          entry["msgpack"].each do |h|
            data = bin(h)
            (0...data.bytesize).each do |n|
              expect { MessagePack.unpack(data.byteslice(0, n), allow_unknown_ext: true) }
                .to raise_error(EOFError), "#{h} cut at #{n}"
              checked += 1
            end
          end
        end
      end
      expect(checked).to be > 500
    end

    describe "timestamps" do
      let(:time_factory) do
        f = MessagePack::Factory.new
        f.register_type(-1, Time, packer: MessagePack::Time::Packer, unpacker: MessagePack::Time::Unpacker)
        f
      end

      it "a payload that is not 4, 8 or 12 bytes raises MalformedFormatError" do
        [0, 1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 16, 255].each do |n|
          payload = "\x00".b * n
          expect { MessagePack::Timestamp.from_msgpack_ext(payload) }
            .to raise_error(MessagePack::MalformedFormatError, "Invalid timestamp data size: #{n}")
          expect { MessagePack::Time::Unpacker.call(payload) }.to raise_error(MessagePack::MalformedFormatError)
          msg = bin("c7") + [n].pack("C") + bin("ff") + payload
          expect { time_factory.load(msg) }.to raise_error(MessagePack::MalformedFormatError), "#{n} via Time"
        end
        f = MessagePack::Factory.new
        f.register_type(-1, MessagePack::Timestamp)
        expect { f.load(bin("d5 ff 0000")) }.to raise_error(MessagePack::MalformedFormatError)
        expect { f.load(bin("d8 ff") + "\x00".b * 16) }.to raise_error(MessagePack::MalformedFormatError)
      end

      it "a bad timestamp in a stream leaves the following objects readable", skip: rs_only do
        u = time_factory.unpacker
        u.feed(bin("92 d5 ff 0000 01") + bin("d6 ff 00000001") + bin("02"))
        expect { u.read }.to raise_error(MessagePack::MalformedFormatError)
        # The 01 belonged to the failed array.
        expect(u.read).to eq(Time.at(1))
        expect(u.read).to eq(2)
      end

      it "nanoseconds >= 10^9 are not rejected (as in the C gem): Timestamp keeps them, Time carries them" do
        ts = MessagePack::Timestamp.from_msgpack_ext([1_000_000_000, 5].pack("L>q>"))
        expect([ts.sec, ts.nsec]).to eq([5, 1_000_000_000])
        ts = MessagePack::Timestamp.from_msgpack_ext([0xffff_ffff, 0].pack("L>q>"))
        expect([ts.sec, ts.nsec]).to eq([0, 0xffff_ffff])
        ts = MessagePack::Timestamp.from_msgpack_ext([0xffff_fffc | 0, 7].pack("L>L>")) # 30-bit nsec field
        expect([ts.sec, ts.nsec]).to eq([7, 0x3fff_ffff])

        t = MessagePack::Time::Unpacker.call([1_000_000_000, 5].pack("L>q>"))
        expect([t.to_i, t.nsec]).to eq([6, 0])
        t = time_factory.load(bin("c7 0c ff") + [1_999_999_999, 5].pack("L>q>"))
        expect([t.to_i, t.nsec]).to eq([6, 999_999_999])
      end

      it "extreme seconds decode without error" do
        t = MessagePack::Time::Unpacker.call([999_999_999, -2**63].pack("L>q>"))
        expect(t.to_i).to eq(-2**63)
        t = MessagePack::Time::Unpacker.call([0, 2**63 - 1].pack("L>q>"))
        expect(t.to_i).to eq(2**63 - 1)
      end
    end
  end

  # ------------------------------------------------------------------ invalid UTF-8

  describe "invalid UTF-8 in str" do
    it "decodes to a UTF-8 String with valid_encoding? == false, bytes kept" do
      [bin("a2 ff fe"), bin("a3 ed a0 80"), bin("a2 c0 80"), bin("da 01 00") + "\xff".b * 256].each do |data|
        [{}, { freeze: true }].each do |opts|
          s = MessagePack.unpack(data, opts)
          expect(s.encoding).to eq(Encoding::UTF_8)
          expect(s.valid_encoding?).to be(false)
          expect(s.b).to eq(data.byteslice((data.getbyte(0) == 0xda ? 3 : 1)..))
          u = MessagePack::Unpacker.new(opts)
          u.feed(data)
          expect(u.read.valid_encoding?).to be(false)
        end
      end
    end

    it "as a map key: a frozen UTF-8 String with valid_encoding? == false" do
      k = MessagePack.unpack(bin("81 a2 ff fe 01")).keys.first
      expect([k.encoding, k.valid_encoding?, k.frozen?]).to eq([Encoding::UTF_8, false, true])
    end

    it "symbolize_keys with an invalid UTF-8 str key raises EncodingError" do
      %w[81a2fffe01 81a2c08001 81a3eda08001].each do |h|
        expect { MessagePack.unpack(bin(h), symbolize_keys: true) }.to raise_error(EncodingError), h
        expect { MessagePack.unpack(bin(h), symbolize_keys: true, key_cache: true) }.to raise_error(EncodingError)
        expect { MessagePack::Factory.new.load(bin(h), symbolize_keys: true) }.to raise_error(EncodingError)
        u = MessagePack::Unpacker.new(symbolize_keys: true)
        u.feed(bin(h))
        expect { u.read }.to raise_error(EncodingError)
      end
    end

    it "symbolize_keys with an invalid-UTF-8 bin key gives a binary Symbol (no error)" do
      key = MessagePack.unpack(bin("81 c4 02 ff fe 01"), symbolize_keys: true).keys.first
      expect(key).to be_a(Symbol)
      expect(key.to_s.b).to eq("\xff\xfe".b)
      expect(key.encoding).to eq(Encoding::BINARY)
    end
  end
end
