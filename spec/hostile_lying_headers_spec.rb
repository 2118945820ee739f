# frozen_string_literal: true

# Hostile input: length headers that lie (a header claiming 2^32-1 elements, chains of
# nested headers each announcing a large count, map32 counts whose doubling overflows 32
# bits). Memory is measured in a child (measure_each / child_report, spec/support/hostile.rb):
# peak RSS growth and time must stay bounded by what actually arrived.

RSpec.describe "Hostile input" do
  include HostileHelpers

  rs_only = HostileHelpers::RS_ONLY

  describe "length headers that lie" do
    it "(the memory probe itself sees a 16 MiB allocation and a raised exception)" do
      r = measure_each("", "alloc" => "'x' * (16 << 20)", "raise" => "raise IOError, 'x'")
      expect(r["alloc"]["growth_kib"]).to be >= 16 * HOSTILE_ONE_MIB_KIB
      expect(r["alloc"]["value"]).to eq("String")
      expect(r["raise"]).to include("error" => "IOError", "message" => "x")
    end

    decode_ways = {
      "MessagePack.unpack" => "MessagePack.unpack(data, OPTS)",
      "Unpacker#feed + read" => "u = MessagePack::Unpacker.new(OPTS); u.feed(data); u.read",
      "Unpacker fed byte by byte" =>
        "u = MessagePack::Unpacker.new(OPTS); r = nil; data.each_char { |c| u.feed(c); begin; r = [u.read]; " \
        "rescue EOFError; end }; r ? r[0] : raise(EOFError)",
      "Unpacker reading an IO" => "MessagePack::Unpacker.new(StringIO.new(data), OPTS).read",
    }

    {
      "array32" => "dd ff ff ff ff",
      "map32" => "df ff ff ff ff",
      "str32" => "db ff ff ff ff",
      "bin32" => "c6 ff ff ff ff",
      "ext32" => "c9 ff ff ff ff 01",
    }.each do |name, header|
      it "#{name} claiming 2^32-1 with no data: EOFError, quickly, peak RSS growth < 1 MiB", :since_1_7 do
        measure_each("data = bin(#{header.inspect}); OPTS = {}", decode_ways).each do |way, r|
          expect(r["error"]).to eq("EOFError"), "#{way}: #{r.inspect}"
          expect(r["growth_kib"]).to be < HOSTILE_ONE_MIB_KIB, "#{way}: #{r.inspect}"
          expect(r["seconds"]).to be < 1.0, "#{way}: #{r.inspect}"
        end
      end
    end

    it "array32 claiming 2^32-1 followed by 1000 real elements only holds what arrived", :since_1_7 do
      r = child_report(<<~'RUBY')
        data = bin("dd ff ff ff ff") + "\xc0".b * 1000
        report(measure { MessagePack.unpack(data) })
      RUBY
      expect(r["error"]).to eq("EOFError")
      expect(r["growth_kib"]).to be < HOSTILE_ONE_MIB_KIB
    end

    it "str32 claiming 4 GiB fed 1 MiB in 1 KiB chunks commits memory only for the bytes that arrived", skip: rs_only do
      r = child_report(<<~'RUBY')
        u = MessagePack::Unpacker.new
        chunk = "a".b * 1024
        report(measure {
          u.feed(bin("db ff ff ff ff"))
          1024.times do
            u.feed(chunk)
            begin
              u.read
            rescue EOFError
            end
          end
          raise EOFError
        })
      RUBY
      expect(r["error"]).to eq("EOFError")
      expect(r["growth_kib"]).to be < 8 * HOSTILE_ONE_MIB_KIB # 1 MiB arrived; a join may copy it once or twice
      expect(r["seconds"]).to be < 2.0 # no quadratic re-copying
    end

    it "50,000 nested array16(65535) headers (150 KB) raise StackError quickly with peak RSS growth < 1 MiB" do
      r = child_report(<<~'RUBY')
        data = bin("dc ff ff") * 50_000
        report(measure { MessagePack.unpack(data) })
      RUBY
      expect(r["error"]).to eq("MessagePack::StackError")
      expect(r["growth_kib"]).to be < HOSTILE_ONE_MIB_KIB
      expect(r["seconds"]).to be < 1.0
    end

    it "the same 50,000 headers with max_depth: 100_000 cost memory per container, not per declared element",
       skip: rs_only do
      ways = {}
      %w[dc-ff-ff dd-ff-ff-ff-ff de-ff-ff df-ff-ff-ff-ff].each do |header|
        ways["#{header} unpack"] = "MessagePack.unpack(bin(#{header.inspect}) * 50_000, max_depth: 100_000)"
        ways["#{header} feed"] =
          "MessagePack::Unpacker.new(max_depth: 100_000).feed(bin(#{header.inspect}) * 50_000).read"
      end
      measure_each("", ways).each do |way, r|
        # 50,000 open containers (Ruby objects + decoder frames) take a few MiB; the
        # declared counts (50,000 x 65535 or 2^32-1 elements) would take gigabytes.
        expect(r["error"]).to eq("EOFError"), "#{way}: #{r.inspect}"
        expect(r["growth_kib"]).to be < 32 * HOSTILE_ONE_MIB_KIB, "#{way}: #{r.inspect}"
        expect(r["seconds"]).to be < 2.0, "#{way}: #{r.inspect}"
      end
    end

    describe "map32 counts whose doubling overflows 32 bits", skip: rs_only do
      it "df 80 00 00 01 followed by one pair is incomplete (EOFError), not a 1-entry map" do
        # count*2 in 32 bits would be 2: the C gem returns {1=>2} here.
        expect { MessagePack.unpack(bin("df 80 00 00 01 01 02")) }.to raise_error(EOFError)
        u = MessagePack::Unpacker.new
        u.feed(bin("df 80 00 00 01 01 02 03 04"))
        expect { u.read }.to raise_error(EOFError)
        expect { MessagePack.unpack(bin("df ff ff ff ff 01 02")) }.to raise_error(EOFError)
        expect { MessagePack.unpack(bin("df 80 00 00 00 01 02")) }.to raise_error(EOFError)
      end

      it "the limit check sees the real count" do
        expect { MessagePack.unpack(bin("df 80 00 00 01 01 02"), max_map_len: 2**31) }
          .to raise_error(MessagePack::MalformedFormatError, "length 2147483649 exceeds max_map_len (2147483648)")
      end

      it "nested overflowing map counts stay bounded in memory" do
        r = child_report(<<~'RUBY')
          data = bin("df 80 00 00 01") * 100 + "\x01".b * 10_000
          report(measure { MessagePack.unpack(data) })
        RUBY
        expect(r["error"]).to eq("EOFError")
        expect(r["growth_kib"]).to be < HOSTILE_ONE_MIB_KIB
      end
    end
  end
end
