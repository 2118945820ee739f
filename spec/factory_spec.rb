# frozen_string_literal: true

# MessagePack::Factory: register_type and its options, registered_types,
# type_registered?, packer/unpacker/dump/load. docs/compatibility.md §11.
# freeze/dup/clone and Pool: factory_pool_spec.rb.

RSpec.describe MessagePack::Factory do
  let(:factory) { MessagePack::Factory.new }

  # A class with the default to_msgpack_ext / from_msgpack_ext pair.
  class FactorySpecPair
    attr_reader :a, :b

    def initialize(a, b)
      @a = a
      @b = b
    end

    def ==(other)
      other.is_a?(FactorySpecPair) && [a, b] == [other.a, other.b]
    end

    def to_msgpack_ext
      [a, b].pack("CC")
    end

    def to_msgpack_ext_only_a
      [a, 0].pack("CC")
    end

    def self.from_msgpack_ext(data)
      new(*data.unpack("CC"))
    end

    def self.from_msgpack_ext_only_b(data)
      new(0, data.unpack("CC")[1])
    end

    def self.pack_ext(obj)
      obj.to_msgpack_ext
    end
  end

  class FactorySpecPairChild < FactorySpecPair; end

  describe ".new" do
    it "takes no arguments" do
      expect { MessagePack::Factory.new(1) }.to raise_error(ArgumentError, "wrong number of arguments (1 for 0)")
    end
  end

  describe "#packer / #unpacker" do
    it "creates a new instance on every call" do
      expect(factory.packer).to be_a(MessagePack::Packer)
      expect(factory.packer).not_to equal(factory.packer)
      expect(factory.unpacker).to be_a(MessagePack::Unpacker)
      expect(factory.unpacker).not_to equal(factory.unpacker)
    end

    it "takes the same arguments as Packer.new / Unpacker.new" do
      io = StringIO.new(+"")
      factory.packer(io, compatibility_mode: true).write("x" * 32).flush
      expect(io.string.b).to eq(bin("da 00 20") + "x" * 32)
      u = factory.unpacker(StringIO.new(MessagePack.pack({ "k" => "v" })), symbolize_keys: true)
      expect(u.read).to eq({ k: "v" })
      expect(factory.unpacker(allow_unknown_ext: true).feed(bin("d4 01 61")).read)
        .to eq(MessagePack::ExtensionValue.new(1, "a"))
      expect { factory.unpacker.feed(bin("d4 01 61")).read }.to raise_error(MessagePack::UnknownExtTypeError)
    end

    it "gives packers and unpackers the factory's registrations, but not later ones" do
      factory.register_type(0x7f, FactorySpecPair)
      packer = factory.packer
      unpacker = factory.unpacker
      factory.register_type(0x7f, FactorySpecPair, packer: :to_msgpack_ext_only_a, unpacker: :from_msgpack_ext_only_b)
      data = packer.write(FactorySpecPair.new(1, 2)).to_s
      expect(data).to eq(bin("d5 7f 01 02"))
      expect(unpacker.feed(data).read).to eq(FactorySpecPair.new(1, 2))
      expect(factory.load(factory.dump(FactorySpecPair.new(1, 2)))).to eq(FactorySpecPair.new(0, 0))
    end
  end

  describe "#dump / #load" do
    before { factory.register_type(0x7f, FactorySpecPair) }

    it "packs and unpacks, aliased as pack/unpack" do
      expect(factory.dump(FactorySpecPair.new(3, 4))).to eq(bin("d5 7f 03 04"))
      expect(factory.pack([FactorySpecPair.new(3, 4)])).to eq(bin("91 d5 7f 03 04"))
      expect(factory.load(bin("d5 7f 03 04"))).to eq(FactorySpecPair.new(3, 4))
      expect(factory.unpack(bin("91 d5 7f 03 04"))).to eq([FactorySpecPair.new(3, 4)])
    end

    it "passes packer and unpacker options" do
      expect(factory.dump("a".b, compatibility_mode: true)).to eq(bin("a1 61"))
      expect(factory.load(MessagePack.pack({ "k" => 1 }), symbolize_keys: true)).to eq({ k: 1 })
    end

    it "writes to and reads from an IO", :since_1_5 do
      io = StringIO.new(+"")
      expect(factory.dump(FactorySpecPair.new(5, 6), io)).to be_nil
      io.rewind
      expect(factory.load(io)).to eq(FactorySpecPair.new(5, 6))
    end

    it "is strict about extra bytes" do
      expect { factory.load(bin("01 02")) }
        .to raise_error(MessagePack::MalformedFormatError, "1 extra bytes after the deserialized object")
    end
  end

  describe "#register_type" do
    let(:src) { FactorySpecPair.new(1, 2) }

    it "returns nil" do
      expect(factory.register_type(1, FactorySpecPair)).to be_nil
    end

    it "uses #to_msgpack_ext and .from_msgpack_ext by default" do
      factory.register_type(0x7f, FactorySpecPair)
      expect(factory.load(factory.dump(src))).to eq(src)
    end

    it "takes method names as Symbols or Strings" do
      factory.register_type(1, FactorySpecPair, packer: :to_msgpack_ext_only_a, unpacker: "from_msgpack_ext_only_b")
      expect(factory.dump(src)).to eq(bin("d5 01 01 00"))
      expect(factory.load(bin("d5 01 07 08"))).to eq(FactorySpecPair.new(0, 8))
    end

    it "takes Procs and lambdas" do
      factory.register_type(1, FactorySpecPair,
                            packer: ->(obj) { [obj.a + obj.b].pack("C") },
                            unpacker: proc { |data| FactorySpecPair.new(data.unpack1("C"), 9) })
      expect(factory.dump(src)).to eq(bin("d4 01 03"))
      expect(factory.load(bin("d4 01 03"))).to eq(FactorySpecPair.new(3, 9))
    end

    it "takes Method objects" do
      factory.register_type(1, FactorySpecPair,
                            packer: FactorySpecPair.method(:pack_ext),
                            unpacker: FactorySpecPair.method(:from_msgpack_ext))
      expect(factory.dump(src)).to eq(bin("d5 01 01 02"))
      expect(factory.load(bin("d5 01 01 02"))).to eq(src)
    end

    it "rejects non-Proc callables with TypeError", :since_1_5, :c_quirk do
      callable = Object.new
      def callable.call(*) = "x"
      expect { factory.register_type(1, FactorySpecPair, packer: callable) }
        .to raise_error(TypeError, /expected :packer argument to be a callable object, got: /)
      expect { factory.register_type(1, FactorySpecPair, unpacker: 42) }
        .to raise_error(TypeError, /expected :unpacker argument to be a callable object, got: 42/)
    end

    it "raises NameError for a missing unpacker class method" do
      expect { factory.register_type(1, FactorySpecPair, unpacker: :nope) }.to raise_error(NameError)
      expect { factory.register_type(1, Class.new) }.to raise_error(NameError)
    end

    it "registers only the sides given in the options", :since_1_5 do
      factory.register_type(1, FactorySpecPair, packer: :to_msgpack_ext)
      factory.register_type(2, FactorySpecPairChild, unpacker: :from_msgpack_ext)
      expect(factory.type_registered?(1, :packer)).to be(true)
      expect(factory.type_registered?(1, :unpacker)).to be(false)
      expect(factory.type_registered?(2, :packer)).to be(false)
      expect(factory.type_registered?(2, :unpacker)).to be(true)
    end

    it "registers an entry with neither side for options nil", :since_1_5 do
      factory.register_type(3, FactorySpecPair, nil)
      expect(factory.registered_types).to eq([{ type: 3, class: FactorySpecPair, packer: nil, unpacker: nil }])
    end

    it "type-checks the type id and class" do
      expect { factory.register_type("1", FactorySpecPair) }.to raise_error(TypeError)
      expect { factory.register_type(128, FactorySpecPair) }.to raise_error(RangeError)
      expect { factory.register_type(-129, FactorySpecPair) }.to raise_error(RangeError)
      expect { factory.register_type(1, 1, packer: :to_s, unpacker: ->(d) { d }) }
        .to raise_error(ArgumentError, "expected Module/Class but found Integer.")
    end

    it "accepts type ids -128 and 127" do
      factory.register_type(-128, FactorySpecPair)
      factory.register_type(127, FactorySpecPairChild)
      expect(factory.dump([FactorySpecPair.new(1, 1), FactorySpecPairChild.new(2, 2)]))
        .to eq(bin("92 d5 80 01 01 d5 7f 02 02"))
    end

    it "ignores unknown options" do
      factory.register_type(1, FactorySpecPair, packer: :to_msgpack_ext, unpacker: :from_msgpack_ext, whatever: 1)
      expect(factory.load(factory.dump(src))).to eq(src)
    end

    it "uses the last packer for a class and each id's own unpacker" do
      factory.register_type(0, Symbol, packer: ->(_) { raise "no" }, unpacker: ->(_) { raise "no" })
      factory.register_type(2, Symbol, packer: ->(_) { raise "no" }, unpacker: ->(_) { raise "no" })
      factory.register_type(1, Symbol, packer: :to_s, unpacker: :to_sym.to_proc)
      expect(factory.dump(:foobar)).to eq(bin("c7 06 01") + "foobar")
      expect(factory.load(bin("c7 06 01") + "foobar")).to eq(:foobar)
    end

    it "matches subclasses, including modules and extended objects" do
      mod = Module.new do
        def self.from_msgpack_ext(data) = "unpacked #{data}"
        def to_msgpack_ext = "value_msgpacked"
      end
      factory.register_type(1, mod)
      including = Class.new { include mod }
      expect(factory.dump(including.new)).to eq(bin("c7 0f 01") + "value_msgpacked")
      expect(factory.dump(Object.new.extend(mod))).to eq(bin("c7 0f 01") + "value_msgpacked")
      expect(factory.load(bin("c7 06 01") + "module")).to eq("unpacked module")
      factory.register_type(2, FactorySpecPair)
      expect(factory.dump(FactorySpecPairChild.new(1, 2))).to eq(bin("d5 02 01 02"))
    end

    it "propagates exceptions from the packer and unpacker procs unchanged" do
      err = Class.new(StandardError)
      factory.register_type(1, FactorySpecPair, packer: ->(_) { raise err, "p" }, unpacker: ->(_) { raise err, "u" })
      expect { factory.dump([src]) }.to raise_error(err, "p")
      expect { factory.load(bin("91 d4 01 00")) }.to raise_error(err, "u")
    end
  end

  describe "Symbols" do
    def roundtrip(obj, opts = nil)
      factory.load(factory.dump(obj), opts)
    end

    it "packs Symbols as strings when none is registered" do
      expect(roundtrip(:symbol)).to eq("symbol")
    end

    it "round-trips Symbols registered with the defaults" do
      factory.register_type(0, Symbol)
      expect(factory.dump(:symbol)).to eq(bin("c7 06 00") + "symbol")
      expect(roundtrip(:symbol)).to equal(:symbol)
      expect(roundtrip({ symbol: 1 })).to eq({ symbol: 1 })
      expect(roundtrip(:symbol, freeze: true)).to equal(:symbol)
      expect(roundtrip(:symbol).encoding).to eq(Encoding::US_ASCII)
    end

    it "keeps UTF-8 symbols UTF-8", :since_1_4_5 do
      factory.register_type(0, Symbol)
      expect(roundtrip(:"fée")).to equal(:"fée")
    end

    it "gives binary symbols for other encodings" do
      factory.register_type(0, Symbol)
      sym = "fàe".encode(Encoding::ISO_8859_1).to_sym
      expect(roundtrip(sym).encoding).to eq(Encoding::BINARY)
    end

    it "keeps Symbols as strings with packer: nil", :since_1_7, :crashes_old_c_gem do
      factory.register_type(0, Symbol, packer: nil)
      expect(roundtrip(:foo)).to eq("foo")
    end

    describe "optimized_symbols_parsing" do
      before do
        factory.register_type(0, Symbol, packer: :to_msgpack_ext, unpacker: :from_msgpack_ext,
                                         optimized_symbols_parsing: true)
      end

      it "round-trips symbols, including the empty one" do
        expect(roundtrip(:symbol)).to equal(:symbol)
        expect(roundtrip(:"")).to equal(:"")
        expect(roundtrip(:symbol).encoding).to eq(Encoding::US_ASCII)
      end

      it "keeps UTF-8 symbols UTF-8", :since_1_4_5 do
        expect(roundtrip(:"fée")).to equal(:"fée")
      end
    end

    # The quirk is absent from 1.4.2 (which keys the fast path on the registered id);
    # exact version it appeared in is unknown, 1.8.3 has it (docs/compatibility.md §18.2).
    it "keys optimized_symbols_parsing on ext type 0 whatever id was registered (quirk)", :since_1_5, :c_quirk do
      factory.register_type(5, Symbol, packer: :to_msgpack_ext, unpacker: ->(d) { "proc:#{d}" },
                                       optimized_symbols_parsing: true)
      expect(factory.load(bin("c7 03 05") + "abc")).to eq("proc:abc")
      expect(factory.load(bin("c7 03 00") + "abc")).to equal(:abc)
    end
  end

  describe "recursive: true", :since_1_5 do
    let(:point) { Struct.new(:x, :y, :z) }

    before do
      pt = point
      factory.register_type(0, Symbol)
      factory.register_type(1, pt,
                            packer: ->(obj, packer) { packer.write(obj.to_h); :ignored },
                            unpacker: ->(unpacker) { h = unpacker.read; pt.new(h[:x], h[:y], h[:z]) },
                            recursive: true)
    end

    it "passes the packer and unpacker to the procs" do
      p1 = point.new(1, 2, 3)
      expect(factory.load(factory.dump(p1))).to eq(p1)
    end

    it "sets the ext length from what the packer wrote" do
      payload = factory.dump([1, point.new(1, 2, 3), 3])
      inner = factory.dump({ x: 1, y: 2, z: 3 })
      expect(payload).to eq(bin("93 01") + MessagePack::ExtensionValue.new(1, inner).to_msgpack + bin("03"))
      expect(MessagePack::Factory.new.load(payload, allow_unknown_ext: true))
        .to eq([1, MessagePack::ExtensionValue.new(1, inner), 3])
    end

    it "uses fixext framing for matching lengths" do
      f = MessagePack::Factory.new
      s = Struct.new(:v)
      f.register_type(1, s, packer: ->(o, pk) { pk.write(o.v) }, unpacker: ->(u) { s.new(u.read) }, recursive: true)
      expect(f.dump(s.new([1, 2, 3]))).to eq(bin("d6 01 93 01 02 03"))
      expect(f.load(bin("d6 01 93 01 02 03"))).to eq(s.new([1, 2, 3]))
    end

    it "nests (the Set example)" do
      require "set"
      f = MessagePack::Factory.new
      f.register_type(2, Set, packer: ->(set, pk) { pk.write(set.to_a) }, unpacker: ->(u) { u.read.to_set },
                              recursive: true)
      expected = Set[1, Set[2, Set[3]]]
      expect(f.dump(expected)).to eq(bin("c7 0b 02 92 01 c7 06 02 92 02 d5 02 91 03"))
      expect(f.load(f.dump(expected))).to eq(expected)
    end

    it "accepts Method objects" do
      mod = Module.new
      pt = point
      mod.define_singleton_method(:pack) { |obj, packer| packer.write(obj.to_a) }
      mod.define_singleton_method(:unpack) { |unpacker| pt.new(*unpacker.read) }
      f = MessagePack::Factory.new
      f.register_type(1, point, packer: mod.method(:pack), unpacker: mod.method(:unpack), recursive: true)
      expect(f.dump(point.new(1, 2, 3))).to eq(bin("d6 01 93 01 02 03"))
      expect(f.load(f.dump(point.new(4, 5, 6)))).to eq(point.new(4, 5, 6))
    end

    it "propagates exceptions from recursive procs" do
      f = MessagePack::Factory.new
      s = Struct.new(:v)
      f.register_type(1, s, packer: ->(_o, _pk) { raise ArgumentError, "pk" },
                            unpacker: ->(_u) { raise ArgumentError, "uk" }, recursive: true)
      expect { f.dump([s.new(1)]) }.to raise_error(ArgumentError, "pk")
      expect { f.load(bin("92 d4 01 01 01")) }.to raise_error(ArgumentError, "uk")
    end
  end

  describe "oversized_integer_extension: true", :since_1_5 do
    it "requires Integer" do
      expect { factory.register_type(1, FactorySpecPair, packer: :to_s, unpacker: ->(d) { d }, oversized_integer_extension: true) }
        .to raise_error(ArgumentError, "oversized_integer_extension: true is only for Integer class")
    end

    it "uses the packer only for integers outside the 64-bit range" do
      factory.register_type(1, Integer, packer: :to_s, unpacker: ->(d) { Integer(d) }, oversized_integer_extension: true)
      expect(factory.dump(42)).to eq(bin("2a"))
      expect(factory.dump(2**64 - 1)).to eq(bin("cf ff ff ff ff ff ff ff ff"))
      expect(factory.dump(-2**63 + 1)).to eq(bin("d3 80 00 00 00 00 00 00 01"))
      expect(factory.dump(2**64)).to eq(bin("c7 14 01") + (2**64).to_s)
      expect(factory.load(factory.dump(10**150))).to eq(10**150)
      expect(factory.load(factory.dump(-10**150))).to eq(-10**150)
    end

    it "sends -2**63 itself through the ext (quirk)", :c_quirk do
      factory.register_type(1, Integer, packer: :to_s, unpacker: ->(d) { Integer(d) }, oversized_integer_extension: true)
      expect(factory.dump(-2**63)).to eq(bin("c7 14 01") + (-2**63).to_s)
    end
  end

  it "still raises RangeError for huge Integers registered without the flag" do
    factory.register_type(1, Integer, packer: :to_s, unpacker: ->(d) { Integer(d) })
    expect { factory.dump(10**150) }.to raise_error(RangeError)
    expect(factory.dump(42)).to eq(bin("2a"))
  end

  describe "#registered_types" do
    it "returns [] for a fresh factory" do
      expect(factory.registered_types).to eq([])
    end

    it "merges packer and unpacker entries and sorts by type (:both)" do
      factory.register_type(0x21, FactorySpecPairChild)
      factory.register_type(0x20, FactorySpecPair)
      list = factory.registered_types
      expect(list.map { |e| e.keys.sort }.uniq).to eq([%i[class packer type unpacker]])
      expect(list.map { |e| [e[:type], e[:class]] }).to eq([[0x20, FactorySpecPair], [0x21, FactorySpecPairChild]])
    end

    it "returns Procs for both sides", :since_1_5 do
      factory.register_type(0x20, FactorySpecPair)
      entry = factory.registered_types.first
      expect(entry[:packer]).to be_a(Proc)
      expect(entry[:unpacker]).to be_a(Proc)
    end

    it "lists nil for unregistered sides and filters with :packer / :unpacker", :since_1_5 do
      factory.register_type(0x20, FactorySpecPair, packer: :to_msgpack_ext)
      factory.register_type(0x21, FactorySpecPairChild, unpacker: :from_msgpack_ext)
      both = factory.registered_types
      expect(both.map { |e| [e[:type], e[:packer].nil?, e[:unpacker].nil?] }).to eq([[0x20, false, true], [0x21, true, false]])
      packers = factory.registered_types(:packer)
      expect(packers.map { |e| [e.keys.sort, e[:type], e[:class]] }).to eq([[%i[class packer type], 0x20, FactorySpecPair]])
      unpackers = factory.registered_types(:unpacker)
      expect(unpackers.map { |e| [e.keys.sort, e[:type], e[:class]] })
        .to eq([[%i[class type unpacker], 0x21, FactorySpecPairChild]])
    end

    it "raises ArgumentError 'invalid selector X' for other selectors" do
      expect { factory.registered_types(:something) }.to raise_error(ArgumentError, "invalid selector something")
    end
  end

  describe "#type_registered?" do
    it "is false on a fresh factory for every selector" do
      expect(factory.type_registered?(0)).to be(false)
      expect(factory.type_registered?(FactorySpecPair)).to be(false)
      expect(factory.type_registered?(0, :both)).to be(false)
      expect(factory.type_registered?(0, :packer)).to be(false)
      expect(factory.type_registered?(0, :unpacker)).to be(false)
    end

    it "matches Classes with <= and Integers by id" do
      factory.register_type(0x20, FactorySpecPair)
      expect(factory.type_registered?(0x20)).to be(true)
      expect(factory.type_registered?(0x21)).to be(false)
      expect(factory.type_registered?(FactorySpecPair)).to be(true)
      expect(factory.type_registered?(FactorySpecPairChild)).to be(true)
      expect(factory.type_registered?(Object)).to be(false)
    end

    it "raises ArgumentError for other arguments and selectors" do
      expect { factory.type_registered?("x") }.to raise_error(ArgumentError, "class or type id")
      expect { factory.type_registered?(Module.new) }.to raise_error(ArgumentError, "class or type id")
      expect { factory.type_registered?(0, :something) }.to raise_error(ArgumentError)
    end
  end
end
