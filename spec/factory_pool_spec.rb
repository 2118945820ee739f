# frozen_string_literal: true

# Factory#freeze / #dup / #clone quirks and Factory::Pool. docs/compatibility.md §11.

RSpec.describe "MessagePack::Factory freeze, dup, clone and pool" do
  let(:factory) { MessagePack::Factory.new }
  let(:klass) do
    Class.new do
      attr_reader :v

      def initialize(v)
        @v = v
      end

      def ==(other) = other.class == self.class && other.v == v
      def to_msgpack_ext = [v].pack("C")
      def self.from_msgpack_ext(data) = new(data.unpack1("C"))
    end
  end

  def bigint_factory
    f = MessagePack::Factory.new
    f.register_type(1, Integer, packer: :to_s, unpacker: ->(d) { Integer(d) }, oversized_integer_extension: true)
    f
  end

  describe "#freeze" do
    it "returns self, is idempotent and freezes the factory" do
      expect(factory.freeze).to equal(factory)
      expect(factory.freeze).to equal(factory)
      expect(factory).to be_frozen
    end

    it "raises FrozenError on register_type afterwards", :since_1_5 do
      factory.register_type(0, Symbol)
      factory.freeze
      expect { factory.register_type(1, Array) }
        .to raise_error(FrozenError, "can't modify frozen MessagePack::Factory")
    end

    it "keeps the registrations working for new packers and unpackers" do
      factory.register_type(3, klass)
      factory.freeze
      expect(factory.dump(klass.new(7))).to eq(bin("d4 03 07"))
      expect(factory.load(bin("d4 03 07"))).to eq(klass.new(7))
      expect(factory.packer.write(klass.new(8)).to_s).to eq(bin("d4 03 08"))
    end

    it "lets packers from a frozen factory still register their own types" do
      factory.freeze
      pk = factory.packer
      pk.register_type(4, klass) { |o| o.to_msgpack_ext }
      expect(pk.write(klass.new(1)).to_s).to eq(bin("d4 04 01"))
      expect { factory.dump(klass.new(1)) }.to raise_error(NoMethodError)
    end

    it "keeps ancestor lookups correct across packers sharing the frozen registry" do
      child = Class.new(klass)
      factory.register_type(3, klass)
      factory.freeze
      expect(factory.dump(child.new(1))).to eq(bin("d4 03 01"))
      expect(factory.dump(child.new(2))).to eq(bin("d4 03 02"))
      expect(factory.dump(klass.new(3))).to eq(bin("d4 03 03"))
    end

    it "keeps the bigint and optimized-symbol flags", :since_1_5 do
      f = bigint_factory.freeze
      expect(f.load(f.dump(10**30))).to eq(10**30)
    end
  end

  describe "#dup", :since_1_5, :crashes_old_c_gem do
    it "returns an unfrozen factory with a copy of the registrations" do
      factory.register_type(3, klass)
      factory.freeze
      copy = factory.dup
      expect(copy).not_to be_frozen
      expect(copy.load(copy.dump(klass.new(5)))).to eq(klass.new(5))
      copy.register_type(4, Class.new(klass))
      expect(copy.registered_types.size).to eq(2)
      expect(factory.registered_types.size).to eq(1)
    end

    it "copies the Symbol-has-ext flag" do
      factory.register_type(0, Symbol)
      expect(factory.dup.dump(:sym)).to eq(bin("c7 03 00") + "sym")
    end

    # The C gem's dup drops this flag (docs/compatibility.md §19.1); msgpack-rs copies the
    # whole registration, so a copy packs the same way as its original.
    it "keeps the oversized_integer_extension flag (the C gem loses it)" do
      copy = bigint_factory.dup
      expect(copy.load(copy.dump(10**30))).to eq(10**30)
    end
  end

  describe "#clone", :since_1_5, :crashes_old_c_gem do
    # The C gem's clone returns an empty registry (docs/compatibility.md §19.1); msgpack-rs
    # copies it like dup does.
    it "copies the registry (the C gem's clone gives an empty one)" do
      factory.register_type(3, klass)
      expect(factory.clone.registered_types).to eq(factory.registered_types)
    end
  end

  describe "#pool", :since_1_5 do
    it "returns a Factory::Pool that dumps and loads" do
      pool = factory.pool
      expect(pool).to be_a(MessagePack::Factory::Pool)
      expect(pool.dump({ "a" => [1] })).to eq(bin("81 a1 61 91 01"))
      expect(pool.load(bin("81 a1 61 91 01"))).to eq({ "a" => [1] })
      expect(factory.pool(1).load(factory.pool(1).dump(42))).to eq(42)
    end

    it "is strict about extra bytes in load" do
      expect { factory.pool.load(bin("01 02")) }.to raise_error(MessagePack::MalformedFormatError)
    end

    it "yields a packer or unpacker and returns the block's value", :since_1_7 do
      pool = factory.pool(1)
      payload = pool.packer { |pk| pk.write(42).full_pack }
      expect(payload).to eq(bin("2a"))
      out = pool.unpacker { |u| u.feed(payload).read }
      expect(out).to eq(42)
    end

    it "resets members when they are returned", :since_1_7 do
      pool = factory.pool(1)
      pool.packer { |pk| pk.write(1) }
      expect(pool.packer { |pk| pk.write(2).full_pack }).to eq(bin("02"))
      pool.unpacker { |u| u.feed(bin("92 01")) }
      expect(pool.unpacker { |u| u.feed(bin("03")).read }).to eq(3)
    end

    it "hands out frozen members that refuse register_type", :since_1_7 do
      pool = factory.pool(1)
      expect { pool.packer { |pk| pk.register_type(0x20, klass) { "t" } } }
        .to raise_error(FrozenError, "can't modify frozen MessagePack::Packer")
      expect { pool.unpacker { |u| u.register_type(0x20) { |d| d } } }
        .to raise_error(FrozenError, "can't modify frozen MessagePack::Unpacker")
    end

    it "sees types registered before, not after, it was built" do
      factory.register_type(0, Symbol)
      pool = factory.pool(1)
      expect(pool.load(pool.dump(:foo))).to equal(:foo)
      factory.register_type(0x20, klass)
      expect { pool.dump(klass.new(1)) }.to raise_error(NoMethodError)
      expect { pool.load(factory.dump(klass.new(1))) }.to raise_error(MessagePack::UnknownExtTypeError)
    end

    it "passes one options hash to both sides" do
      pool = factory.pool(1, symbolize_keys: true, freeze: true, compatibility_mode: true)
      expect(pool.dump("x" * 32)).to eq(bin("da 00 20") + "x" * 32)
      out = pool.load(pool.dump({ "foo" => "bar" }))
      expect(out).to eq({ foo: "bar" })
      expect(out).to be_frozen
      expect(out[:foo]).to be_frozen
    end

    it "works with size 0" do
      pool = factory.pool(0)
      expect(pool.load(pool.dump([1, 2]))).to eq([1, 2])
    end

    it "creates extra members on demand beyond its size", :since_1_7 do
      pool = factory.pool(1)
      nested = pool.packer { |a| pool.packer { |b| pool.packer { |c| [a, b, c].uniq.size } } }
      expect(nested).to eq(3)
    end

    # The C gem's pool of an unfrozen factory loses the flag (docs/compatibility.md §19.1).
    it "keeps the bigint flag when built from an unfrozen factory (the C gem loses it)" do
      pool = bigint_factory.pool
      expect(pool.load(pool.dump(10**30))).to eq(10**30)
    end

    it "keeps the bigint flag when built from a frozen factory" do
      pool = bigint_factory.freeze.pool
      expect(pool.load(pool.dump(10**30))).to eq(10**30)
    end

    it "is thread safe" do
      pool = factory.pool(2)
      threads = Array.new(8) do |t|
        Thread.new do
          500.times.map { |i| pool.load(pool.dump([t, i, "s#{i}"])) == [t, i, "s#{i}"] }.all?
        end
      end
      expect(threads.map(&:value)).to all(be(true))
    end
  end
end
