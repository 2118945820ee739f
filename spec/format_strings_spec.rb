# frozen_string_literal: true

# Wire formats of str/bin/array/map, string encodings, Symbols, compatibility mode,
# Hash subclasses and default procs, map key handling. docs/compatibility.md §3, §7, §8, §10.

RSpec.describe "MessagePack wire format (strings and containers)" do
  def roundtrip(obj, **opts)
    MessagePack.unpack(MessagePack.pack(obj), **opts)
  end

  describe "str" do
    { 0 => "a0", 1 => "a1", 31 => "bf", 32 => "d9 20", 255 => "d9 ff",
      256 => "da 01 00", 65_535 => "da ff ff", 65_536 => "db 00 01 00 00" }.each do |len, header|
      it "packs a #{len}-byte UTF-8 string with header #{header} and decodes it as UTF-8" do
        s = "s" * len
        expect(MessagePack.pack(s)).to eq(bin(header) + s.b)
        out = MessagePack.unpack(bin(header) + s.b)
        expect(out).to eq(s)
        expect(out.encoding).to eq(Encoding::UTF_8)
        expect(out).not_to be_frozen
      end
    end

    it "decodes non-minimal str headers" do
      { "d9" => 0, "da" => 1, "db" => 3 }.each do |lead, zeros|
        data = bin(lead) + ("\x00" * zeros).b + "\x03".b + "abc".b
        out = MessagePack.unpack(data)
        expect(out).to eq("abc")
        expect(out.encoding).to eq(Encoding::UTF_8)
      end
      expect(MessagePack.unpack(bin("d9 00"))).to eq("")
      expect(MessagePack.unpack(bin("db 00 00 00 00")).encoding).to eq(Encoding::UTF_8)
    end

    it "packs multi-byte UTF-8 by byte length" do
      s = "é" * 16 # 32 bytes
      expect(MessagePack.pack(s)).to eq(bin("d9 20") + s.b)
      expect(roundtrip(s)).to eq(s)
      expect(roundtrip("🍺")).to eq("🍺")
      expect(MessagePack.pack("🍺")).to eq(bin("a4 f0 9f 8d ba"))
    end

    it "keeps UTF-8 for long strings (issue #200)" do
      s = "a" * 300
      expect(roundtrip(s).encoding).to eq(Encoding::UTF_8)
      expect(roundtrip("a" * 70_000).encoding).to eq(Encoding::UTF_8)
    end

    it "packs US-ASCII strings as str" do
      s = "abc".encode(Encoding::US_ASCII)
      expect(MessagePack.pack(s)).to eq(bin("a3 61 62 63"))
      expect(roundtrip(s).encoding).to eq(Encoding::UTF_8)
    end

    it "does not validate UTF-8 when packing or unpacking" do
      bad = "\xFF".dup.force_encoding(Encoding::UTF_8)
      expect(MessagePack.pack(bad)).to eq(bin("a1 ff"))
      out = MessagePack.unpack(bin("a2 c3 28"))
      expect(out.encoding).to eq(Encoding::UTF_8)
      expect(out.b).to eq("\xC3\x28".b)
      expect(out.valid_encoding?).to be(false)
    end

    it "transcodes other encodings to UTF-8" do
      expect(MessagePack.pack("sk\xE5l".dup.force_encoding(Encoding::ISO_8859_1))).to eq(bin("a5 73 6b c3 a5 6c"))
      expect(MessagePack.pack("é".encode(Encoding::UTF_16LE))).to eq(bin("a2 c3 a9"))
      expect(MessagePack.pack("日本".encode(Encoding::EUC_JP))).to eq(bin("a6") + "日本".b)
      expect(MessagePack.pack("日本".encode(Encoding::Shift_JIS))).to eq(bin("a6") + "日本".b)
    end

    it "packs 7-bit strings in other ASCII-compatible encodings without transcoding" do
      expect(MessagePack.pack("abc".encode(Encoding::Shift_JIS))).to eq(bin("a3 61 62 63"))
      expect(MessagePack.pack("abc".encode(Encoding::ISO_8859_1))).to eq(bin("a3 61 62 63"))
    end

    it "raises Encoding::InvalidByteSequenceError for invalid bytes in other encodings" do
      expect { MessagePack.pack("\xFF".dup.force_encoding(Encoding::EUC_JP)) }
        .to raise_error(Encoding::InvalidByteSequenceError)
    end

    it "ignores Encoding.default_internal/default_external" do
      set_defaults = lambda do |external, internal|
        verbose = $VERBOSE
        $VERBOSE = nil # "warning: setting Encoding.default_external"
        Encoding.default_external = external
        Encoding.default_internal = internal
      ensure
        $VERBOSE = verbose
      end
      ext = Encoding.default_external
      int = Encoding.default_internal
      begin
        set_defaults.call(Encoding::UTF_8, Encoding::ISO_8859_1)
        expect(MessagePack.pack("sk\xE5l".dup.force_encoding(Encoding::ISO_8859_1))).to eq(bin("a5 73 6b c3 a5 6c"))
        expect(MessagePack.unpack(bin("a2 c3 a9")).encoding).to eq(Encoding::UTF_8)
      ensure
        set_defaults.call(ext, int)
      end
    end
  end

  describe "bin" do
    { 0 => "c4 00", 1 => "c4 01", 255 => "c4 ff", 256 => "c5 01 00",
      65_535 => "c5 ff ff", 65_536 => "c6 00 01 00 00" }.each do |len, header|
      it "packs a #{len}-byte binary string with header #{header} and decodes it as ASCII-8BIT" do
        s = ("\xAB" * len).b
        expect(MessagePack.pack(s)).to eq(bin(header) + s)
        out = MessagePack.unpack(bin(header) + s)
        expect(out).to eq(s)
        expect(out.encoding).to eq(Encoding::BINARY)
        expect(out).not_to be_frozen
      end
    end

    it "decodes non-minimal bin headers" do
      expect(MessagePack.unpack(bin("c5 00 02 00 ff"))).to eq("\x00\xFF".b)
      expect(MessagePack.unpack(bin("c6 00 00 00 02 00 ff"))).to eq("\x00\xFF".b)
      expect(MessagePack.unpack(bin("c6 00 00 00 00")).encoding).to eq(Encoding::BINARY)
    end

    it "packs through Packer#write_bin, transcoding to binary" do
      expect(MessagePack::Packer.new.write_bin("abc").to_s).to eq(bin("c4 03 61 62 63"))
      expect(MessagePack::Packer.new.write_bin("é".b).to_s).to eq(bin("c4 02 c3 a9"))
    end

    it "raises Encoding::UndefinedConversionError in write_bin for non-ASCII text (rb_str_encode to BINARY)" do
      expect { MessagePack::Packer.new.write_bin("é") }.to raise_error(Encoding::UndefinedConversionError)
    end

    it "writes a bin header with Packer#write_bin_header" do
      expect(MessagePack::Packer.new.write_bin_header(3).to_s).to eq(bin("c4 03"))
      expect(MessagePack::Packer.new.write_bin_header(256).to_s).to eq(bin("c5 01 00"))
      expect(MessagePack::Packer.new.write_bin_header(65_536).to_s).to eq(bin("c6 00 01 00 00"))
    end
  end

  describe "arrays" do
    { 0 => "90", 1 => "91", 15 => "9f", 16 => "dc 00 10", 65_535 => "dc ff ff",
      65_536 => "dd 00 01 00 00" }.each do |n, header|
      it "packs #{n} elements with header #{header}" do
        ary = Array.new(n, nil)
        expect(MessagePack.pack(ary)).to eq(bin(header) + ("\xC0" * n).b)
        expect(MessagePack.unpack(bin(header) + ("\xC0" * n).b)).to eq(ary)
      end
    end

    it "decodes non-minimal array headers" do
      expect(MessagePack.unpack(bin("dc 00 01 01"))).to eq([1])
      expect(MessagePack.unpack(bin("dd 00 00 00 02 01 02"))).to eq([1, 2])
      expect(MessagePack.unpack(bin("dc 00 00"))).to eq([])
    end

    it "packs nested arrays" do
      expect(MessagePack.pack([[[[1, 2], 3], 4]])).to eq(bin("91 92 92 92 01 02 03 04"))
      expect(MessagePack.unpack(bin("91 92 92 92 01 02 03 04"))).to eq([[[[1, 2], 3], 4]])
    end

    it "raises SystemStackError for a self-referencing Array" do
      a = []
      a << a
      expect { MessagePack.pack(a) }.to raise_error(SystemStackError)
    end
  end

  describe "maps" do
    { 0 => "80", 1 => "81", 15 => "8f", 16 => "de 00 10", 65_535 => "de ff ff",
      65_536 => "df 00 01 00 00" }.each do |n, header|
      it "packs #{n} pairs with header #{header}" do
        h = {}
        n.times { |i| h[i] = nil }
        body = (0...n).map { |i| MessagePack.pack(i) + "\xC0".b }.join.b
        expect(MessagePack.pack(h)).to eq(bin(header) + body)
        expect(MessagePack.unpack(bin(header) + body)).to eq(h)
      end
    end

    it "decodes non-minimal map headers" do
      expect(MessagePack.unpack(bin("de 00 01 01 02"))).to eq({ 1 => 2 })
      expect(MessagePack.unpack(bin("df 00 00 00 01 01 02"))).to eq({ 1 => 2 })
    end

    it "keeps insertion order" do
      h = { "z" => 1, "a" => 2, 3 => 3, nil => 4 }
      expect(MessagePack.pack(h)).to eq(bin("84 a1 7a 01 a1 61 02 03 03 c0 04"))
      expect(roundtrip(h).to_a).to eq(h.to_a)
    end

    it "ignores default and default_proc" do
      h = Hash.new(5)
      h["a"] = 1
      expect(MessagePack.pack(h)).to eq(bin("81 a1 61 01"))
      out = roundtrip(h)
      expect(out.default).to be_nil
      h2 = Hash.new { |hash, k| hash[k] = k }
      h2[:x] = 1
      expect(MessagePack.pack(h2)).to eq(bin("81 a1 78 01"))
      expect(roundtrip(h2).default_proc).to be_nil
    end

    it "ignores compare_by_identity" do
      h = {}.compare_by_identity
      h["a"] = 1
      expect(MessagePack.pack(h)).to eq(bin("81 a1 61 01"))
      expect(roundtrip(h)).not_to be_compare_by_identity
    end

    it "accepts any type as a key and lets the last duplicate key win" do
      expect(MessagePack.unpack(bin("82 c0 01 91 01 02"))).to eq({ nil => 1, [1] => 2 })
      expect(MessagePack.unpack(bin("82 a1 61 01 a1 61 02"))).to eq({ "a" => 2 })
      expect(MessagePack.unpack(bin("81 81 01 02 03"))).to eq({ { 1 => 2 } => 3 })
    end

    it "returns frozen, deduplicated UTF-8 str keys even without freeze" do
      out = MessagePack.unpack(bin("92 81 a3 6b 65 79 01 81 a3 6b 65 79 02"))
      k1 = out[0].keys[0]
      k2 = out[1].keys[0]
      expect(k1).to be_frozen
      expect(k1.encoding).to eq(Encoding::UTF_8)
      expect(k1).to equal(k2)
    end

    it "does not freeze str values" do
      out = MessagePack.unpack(bin("91 a3 66 6f 6f"))
      expect(out.first).not_to be_frozen
    end

    it "freezes bin keys (Hash#[]= copies them) but not Array keys" do
      out = MessagePack.unpack(bin("81 c4 01 61 01"))
      expect(out.keys[0]).to be_frozen
      expect(out.keys[0].encoding).to eq(Encoding::BINARY)
      out = MessagePack.unpack(bin("81 91 01 01"))
      expect(out.keys[0]).not_to be_frozen
    end
  end

  describe "Symbols" do
    it "packs Symbols as str by default" do
      expect(MessagePack.pack(:symbol)).to eq(bin("a6") + "symbol".b)
      expect(roundtrip(:symbol)).to eq("symbol")
      expect(MessagePack.pack(:"fée")).to eq(bin("a4 66 c3 a9 65"))
      expect(MessagePack.pack(:"")).to eq(bin("a0"))
    end

    it "packs Symbol keys as str keys" do
      expect(MessagePack.pack({ a: 1 })).to eq(bin("81 a1 61 01"))
      expect(roundtrip({ a: { b: 2 } })).to eq({ "a" => { "b" => 2 } })
    end

    it "packs a binary-encoded Symbol as bin" do
      expect(MessagePack.pack("\xFF".b.to_sym)).to eq(bin("c4 01 ff"))
    end

    it "transcodes Symbols in other encodings to UTF-8" do
      sym = "é".encode(Encoding::ISO_8859_1).to_sym
      expect(MessagePack.pack(sym)).to eq(bin("a2 c3 a9"))
    end

    it "writes Symbols with Packer#write_symbol" do
      expect(MessagePack::Packer.new.write_symbol(:ab).to_s).to eq(bin("a2 61 62"))
    end
  end

  describe "compatibility mode" do
    let(:packer) { MessagePack::Packer.new(compatibility_mode: true) }

    it "has no str8: a 32-byte string gets a raw16 header" do
      expect(MessagePack.pack("x" * 31, compatibility_mode: true)).to eq(bin("bf") + "x" * 31)
      expect(MessagePack.pack("x" * 32, compatibility_mode: true)).to eq(bin("da 00 20") + "x" * 32)
      expect(MessagePack.pack("x" * 65_536, compatibility_mode: true)).to eq(bin("db 00 01 00 00") + "x" * 65_536)
    end

    it "packs binary strings with raw (str) headers" do
      expect(MessagePack.pack("hello".b, compatibility_mode: true)).to eq(bin("a5") + "hello")
      out = MessagePack.pack(("hello" * 100).b, compatibility_mode: true)
      expect(out).to start_with(bin("da 01 f4"))
      expect(packer.write_bin("ab").to_s).to eq(bin("a2 61 62"))
    end

    it "still writes ext types" do
      expect(packer.write(MessagePack::ExtensionValue.new(1, "a")).to_s).to eq(bin("d4 01 61"))
    end

    it "still writes a bin header with write_bin_header" do
      expect(packer.write_bin_header(3).to_s).to eq(bin("c4 03"))
    end

    it "treats any truthy value as enabled" do
      expect(MessagePack::Packer.new(compatibility_mode: 1).compatibility_mode?).to be(true)
      expect(MessagePack::Packer.new(compatibility_mode: nil).compatibility_mode?).to be(false)
      expect(MessagePack::Packer.new(compatibility_mode: false).compatibility_mode?).to be(false)
    end
  end

  describe "subclasses of core types" do
    let(:hash_class) { Class.new(Hash) }
    let(:string_class) { Class.new(String) }
    let(:array_class) { Class.new(Array) }

    it "packs subclasses natively when no ext type is registered" do
      expect(MessagePack.pack(hash_class[1, 2])).to eq(bin("81 01 02"))
      expect(MessagePack.pack(string_class.new("ab"))).to eq(bin("a2 61 62"))
      expect(MessagePack.pack(array_class[1])).to eq(bin("91 01"))
    end

    it "uses a registered ext type for subclasses first", :since_1_4_3 do
      factory = MessagePack::Factory.new
      factory.register_type(1, hash_class, packer: ->(_h) { "H" })
      factory.register_type(2, string_class, packer: ->(s) { s.upcase })
      factory.register_type(3, array_class, packer: ->(_a) { "A" })
      expect(factory.dump(hash_class[1, 2])).to eq(bin("d4 01 48"))
      expect(factory.dump(string_class.new("ab"))).to eq(bin("d5 02 41 42"))
      expect(factory.dump(array_class[1])).to eq(bin("d4 03 41"))
      expect(factory.dump({ 1 => 2 })).to eq(bin("81 01 02"))
    end
  end
end
