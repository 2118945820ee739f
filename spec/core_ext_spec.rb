# frozen_string_literal: true

# MessagePack::CoreExt#to_msgpack and the Symbol helpers. docs/compatibility.md §3.

RSpec.describe MessagePack::CoreExt do
  # An Array of pairs: "a" and "a".b are equal Hash keys.
  CORE_EXT_SAMPLES = [
    [nil, "c0"], [true, "c3"], [false, "c2"], [1, "01"], [-4_294_967_296, "d3 ff ff ff ff 00 00 00 00"],
    [2**64 - 1, "cf ff ff ff ff ff ff ff ff"], [1.0, "cb 3f f0 00 00 00 00 00 00"], ["a", "a1 61"],
    ["a".b, "c4 01 61"], [[1, "b"], "92 01 a1 62"], [{ "k" => nil }, "81 a1 6b c0"], [:sym, "a3 73 79 6d"],
    [MessagePack::ExtensionValue.new(1, "x"), "d4 01 78"],
  ].freeze

  it "is a Module included in the core classes and ExtensionValue" do
    expect(MessagePack::CoreExt).to be_instance_of(Module)
    [NilClass, TrueClass, FalseClass, Integer, Float, String, Array, Hash, Symbol, MessagePack::ExtensionValue]
      .each { |k| expect(k.ancestors).to include(MessagePack::CoreExt), k.name.to_s }
  end

  describe "#to_msgpack with no argument" do
    CORE_EXT_SAMPLES.each do |obj, h|
      it "returns the binary encoding of #{obj.inspect} (#{obj.class})" do
        out = obj.to_msgpack
        expect(out).to eq(bin(h))
        expect(out).to be_instance_of(String)
        expect(out.encoding).to eq(Encoding::BINARY)
      end
    end
  end

  describe "#to_msgpack(packer)" do
    it "writes into the packer and returns the packer" do
      pk = MessagePack::Packer.new
      CORE_EXT_SAMPLES.each { |obj, _| expect(obj.to_msgpack(pk)).to equal(pk) }
      expect(pk.to_s).to eq(CORE_EXT_SAMPLES.map { |_, h| bin(h) }.join.b)
    end

    it "writes a Bignum into the packer" do
      pk = MessagePack::Packer.new
      -4_294_967_296.to_msgpack(pk)
      expect(pk.to_s).to eq(bin("d3 ff ff ff ff 00 00 00 00"))
    end

    it "skips ext lookup for the top-level object (a registered Hash subclass stays a map)" do
      sub = Class.new(Hash)
      pk = MessagePack::Packer.new
      pk.register_type(1, sub) { |_h| "E" }
      sub[1, 2].to_msgpack(pk)
      expect(pk.to_s).to eq(bin("81 01 02"))
    end

    it "writes through private to_msgpack_with_packer" do
      expect(nil.respond_to?(:to_msgpack_with_packer)).to be(false)
      expect(nil.respond_to?(:to_msgpack_with_packer, true)).to be(true)
    end
  end

  describe "#to_msgpack(io)" do
    it "writes to a StringIO and returns nil" do
      io = StringIO.new(+"")
      expect([1, 2].to_msgpack(io)).to be_nil
      expect("x".to_msgpack(io)).to be_nil
      expect(io.string.b).to eq(bin("92 01 02 a1 78"))
    end

    it "writes to a Tempfile" do
      Tempfile.create("core-ext") do |f|
        { "a" => 1 }.to_msgpack(f)
        f.flush
        f.rewind
        expect(f.read.b).to eq(bin("81 a1 61 01"))
      end
    end
  end

  describe "other objects" do
    it "do not get to_msgpack" do
      [Object.new, Struct.new(:a).new(1), Time.at(0), 1r, 1i, 1..2, Class.new].each do |obj|
        expect(obj).not_to respond_to(:to_msgpack), obj.inspect
        expect { MessagePack.pack(obj) }.to raise_error(NoMethodError, /to_msgpack/)
      end
    end

    it "can define their own to_msgpack" do
      klass = Class.new do
        def to_msgpack(pk = nil)
          return MessagePack.pack(self, pk) unless pk.is_a?(MessagePack::Packer)

          pk.write_array_header(2).write(1).write(2)
        end
      end
      delegating = Class.new do
        def to_msgpack(pk = nil) = [1, 2].to_msgpack(pk)
      end
      expect(MessagePack.pack(klass.new)).to eq(bin("92 01 02"))
      expect(klass.new.to_msgpack).to eq(bin("92 01 02"))
      expect(MessagePack.pack(delegating.new)).to eq(bin("92 01 02"))
      expect(delegating.new.to_msgpack).to eq(bin("92 01 02"))
      io = StringIO.new(+"")
      MessagePack.pack(klass.new, io)
      delegating.new.to_msgpack(io)
      expect(io.string.b).to eq(bin("92 01 02 92 01 02"))
    end
  end

  describe "Symbol helpers" do
    it "defines Symbol#to_msgpack_ext returning the name" do
      expect(:abc.to_msgpack_ext).to eq("abc")
    end

    it "keeps the name's UTF-8 encoding in Symbol#to_msgpack_ext", :since_1_4_5 do
      expect(:"fée".to_msgpack_ext).to eq("fée")
      expect(:"fée".to_msgpack_ext.encoding).to eq(Encoding::UTF_8)
    end

    it "interns data with Symbol.from_msgpack_ext" do
      expect(Symbol.from_msgpack_ext("abc".b)).to equal(:abc)
    end

    it "interns UTF-8 data as a UTF-8 Symbol", :since_1_4_5 do
      expect(Symbol.from_msgpack_ext("fée".b)).to equal(:"fée")
    end

    it "falls back to a binary Symbol for invalid UTF-8" do
      sym = Symbol.from_msgpack_ext("\xFF".b)
      expect(sym.encoding).to eq(Encoding::BINARY)
      expect(sym.to_s.b).to eq("\xFF".b)
    end

    it "changes the encoding of the data in place", :since_1_4_5 do
      data = "abc".b
      Symbol.from_msgpack_ext(data)
      expect(data.encoding).to eq(Encoding::UTF_8)
    end
  end
end
