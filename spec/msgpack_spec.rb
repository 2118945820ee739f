# frozen_string_literal: true

# MessagePack module: constants, module functions, DefaultFactory, exceptions.
# docs/compatibility.md §2, §14.

RSpec.describe MessagePack do
  DOCUMENTED_CONSTANTS = %i[
    Buffer CoreExt DefaultFactory ExtensionValue Factory HeldBuffer MalformedFormatError
    Packer StackError Time Timestamp TypeError UnexpectedTypeError UnknownExtTypeError
    UnpackError Unpacker VERSION
  ].freeze
  # msgpack-rs additions (docs/memory.md); absent from the C gem.
  RS_EXTENSION_CONSTANTS = MSGPACK_SPEC_ORACLE ? [] : %i[CompactReport MappedUnpacker Memory MemoryPressure]
  RS_EXTENSION_FUNCTIONS = MSGPACK_SPEC_ORACLE ? [] : %i[compact! load_file]

  describe "constants" do
    it "defines every documented constant except HeldBuffer on all versions" do
      (DOCUMENTED_CONSTANTS - [:HeldBuffer]).each do |name|
        expect(MessagePack.const_defined?(name, false)).to be(true), "missing MessagePack::#{name}"
      end
    end

    it "has exactly the documented constants after require 'msgpack'", :since_1_7 do
      # In a fresh process: other spec files require msgpack/bigint, which adds Bigint.
      out, err, status = run_isolated_ruby('require "msgpack"; print MessagePack.constants.sort.join(" ")')
      expect(status).to be_success, err
      expect(out.split.map(&:to_sym)).to eq((DOCUMENTED_CONSTANTS + RS_EXTENSION_CONSTANTS).sort)
    end

    it "does not define DEFAULT_EMPTY_PARAMS (removed before 1.5.0)", :since_1_5 do
      expect(MessagePack.const_defined?(:DEFAULT_EMPTY_PARAMS, false)).to be(false)
    end

    it "nests Pool inside Factory", :since_1_5 do
      expect(MessagePack::Factory::Pool).to be_a(Class)
    end

    it "has a HeldBuffer BasicObject subclass without an allocator", :since_1_7 do
      expect(MessagePack::HeldBuffer).to be_a(Class)
      expect(MessagePack::HeldBuffer.superclass).to equal(BasicObject)
      expect { MessagePack::HeldBuffer.allocate }.to raise_error(TypeError)
    end

    it "has VERSION 1.8.3", :since_1_8 do
      expect(MessagePack::VERSION).to eq("1.8.3")
    end

    it "has a String VERSION" do
      expect(MessagePack::VERSION).to be_a(String)
      expect(MessagePack::VERSION).to match(/\A\d+\.\d+\.\d+\z/)
    end

    it "has only pack, dump, load and unpack as singleton methods" do
      expect(MessagePack.singleton_methods.sort).to eq((%i[dump load pack unpack] + RS_EXTENSION_FUNCTIONS).sort)
    end

    it "defines them as module functions (private instance methods too)" do
      expect(MessagePack.private_instance_methods(false).sort).to include(:dump, :load, :pack, :unpack)
    end

    it "does not load MessagePack::Bigint with require 'msgpack'" do
      out, err, status = run_isolated_ruby('require "msgpack"; print defined?(MessagePack::Bigint).inspect')
      expect(status).to be_success, err
      expect(out).to eq("nil")
    end

    it "loads MessagePack::Bigint with require 'msgpack/bigint'", :since_1_5 do
      out, err, status = run_isolated_ruby('require "msgpack"; require "msgpack/bigint"; print MessagePack::Bigint.class')
      expect(status).to be_success, err
      expect(out).to eq("Module")
    end
  end

  describe "DefaultFactory" do
    it "is an unfrozen Factory" do
      expect(MessagePack::DefaultFactory).to be_a(MessagePack::Factory)
      expect(MessagePack::DefaultFactory).not_to be_frozen
    end

    it "applies its registrations to MessagePack.pack/unpack and core #to_msgpack" do
      code = <<~RUBY
        require "msgpack"
        Point = Struct.new(:x, :y)
        MessagePack::DefaultFactory.register_type(0x21, Point,
          packer: ->(pt) { [pt.x, pt.y].pack("CC") },
          unpacker: ->(data) { Point.new(*data.unpack("CC")) })
        bytes = MessagePack.pack(Point.new(1, 2))
        print bytes.unpack1("H*"), " "
        print MessagePack.unpack(bytes) == Point.new(1, 2), " "
        print [Point.new(3, 4)].to_msgpack.unpack1("H*"), " "
        print MessagePack.load(MessagePack.dump({ "p" => Point.new(5, 6) })) == { "p" => Point.new(5, 6) }
      RUBY
      out, err, status = run_isolated_ruby(code)
      expect(status).to be_success, err
      # Values compared in the child (Struct#== checks the class too), not through
      # Hash#inspect, whose format changed in Ruby 3.4.
      expect(out).to eq("d5210102 true 91d5210304 true")
    end

    it "makes Symbols round-trip as ext 0 with the README recipe" do
      code = <<~RUBY
        require "msgpack"
        MessagePack::DefaultFactory.register_type(0x00, Symbol)
        bytes = MessagePack.pack(:symbol)
        print bytes.unpack1("H*"), " ", MessagePack.unpack(bytes).inspect, " ", :abc.to_msgpack.unpack1("H*")
      RUBY
      out, err, status = run_isolated_ruby(code)
      expect(status).to be_success, err
      expect(out).to eq("c70600#{"symbol".unpack1("H*")} :symbol c70300616263")
    end
  end

  describe ".pack / .dump" do
    it "returns a binary String" do
      out = MessagePack.pack({ "a" => [1, nil, true] })
      expect(out).to eq(bin("81 a1 61 93 01 c0 c3"))
      expect(out.encoding).to eq(Encoding::BINARY)
      expect(MessagePack.dump("x")).to eq(bin("a1 78"))
    end

    it "is also a module function" do
      mod = Module.new { extend MessagePack }
      expect(mod.send(:pack, 1)).to eq(bin("01"))
      expect(mod.send(:dump, 1)).to eq(bin("01"))
    end

    it "writes to an IO given as 2nd argument and returns nil" do
      io = StringIO.new(+"")
      expect(MessagePack.pack([1, 2], io)).to be_nil
      expect(io.string.b).to eq(bin("92 01 02"))
      expect(MessagePack.dump("a", io)).to be_nil
      expect(io.string.b).to eq(bin("92 01 02 a1 61"))
    end

    it "writes to a Tempfile" do
      Tempfile.create("msgpack-spec") do |file|
        MessagePack.pack({ "k" => "v" }, file)
        file.flush
        file.rewind
        expect(file.read.b).to eq(bin("81 a1 6b a1 76"))
      end
    end

    it "treats a Hash 2nd argument as options" do
      expect(MessagePack.pack("a".b, { compatibility_mode: true })).to eq(bin("a1 61"))
      expect(MessagePack.pack("a".b, compatibility_mode: true)).to eq(bin("a1 61"))
      expect(MessagePack.pack("a".b)).to eq(bin("c4 01 61"))
    end

    it "accepts (obj, nil, options) and (obj, io, options)" do
      expect(MessagePack.pack("x" * 32, nil, compatibility_mode: true)).to eq(bin("da 00 20") + "x" * 32)
      io = StringIO.new(+"")
      expect(MessagePack.pack("x" * 32, io, compatibility_mode: true)).to be_nil
      expect(io.string.b).to eq(bin("da 00 20") + "x" * 32)
    end

    it "ignores unknown option keys" do
      expect(MessagePack.pack(1, { nonsense: true })).to eq(bin("01"))
    end

    it "raises NoMethodError for objects without to_msgpack" do
      expect { MessagePack.pack(Object.new) }.to raise_error(NoMethodError, /to_msgpack/)
      expect { MessagePack.pack(Struct.new(:a).new(1)) }.to raise_error(NoMethodError, /to_msgpack/)
      expect { MessagePack.pack(Time.at(0)) }.to raise_error(NoMethodError, /to_msgpack/)
      expect { MessagePack.pack(1r) }.to raise_error(NoMethodError, /to_msgpack/)
    end
  end

  describe ".unpack / .load" do
    it "unpacks a String" do
      expect(MessagePack.unpack(bin("93 01 a1 61 c4 01 62"))).to eq([1, "a", "b"])
      expect(MessagePack.load(bin("c3"))).to be(true)
    end

    it "is also a module function" do
      mod = Module.new { extend MessagePack }
      expect(mod.send(:unpack, bin("01"))).to eq(1)
      expect(mod.send(:load, bin("02"))).to eq(2)
    end

    it "accepts a frozen source String" do
      src = bin("92 01 02").freeze
      expect(MessagePack.unpack(src)).to eq([1, 2])
    end

    it "accepts a source String with any encoding" do
      src = bin("a3 61 62 63").force_encoding(Encoding::UTF_8)
      expect(MessagePack.unpack(src)).to eq("abc")
    end

    it "does not modify the source String" do
      src = bin("92 a1 61 a1 62")
      copy = src.dup
      MessagePack.unpack(src)
      expect(src).to eq(copy)
      expect(src.encoding).to eq(Encoding::BINARY)
    end

    it "passes options (symbolize_keys, freeze, allow_unknown_ext)" do
      data = MessagePack.pack({ "a" => { "b" => "c" } })
      expect(MessagePack.unpack(data, symbolize_keys: true)).to eq({ a: { b: "c" } })
      expect(MessagePack.load(data, symbolize_keys: true)).to eq({ a: { b: "c" } })
      frozen = MessagePack.unpack(data, freeze: true)
      expect(frozen).to be_frozen
      expect(frozen["a"]).to be_frozen
      expect(frozen["a"]["b"]).to be_frozen
      expect(MessagePack.unpack(bin("d4 05 01"), allow_unknown_ext: true))
        .to eq(MessagePack::ExtensionValue.new(5, "\x01".b))
    end

    it "ignores unknown option keys" do
      data = MessagePack.pack({ "hello" => "world" })
      expect(MessagePack.unpack(data, other_option: false)).to eq({ "hello" => "world" })
      expect(MessagePack.unpack(data, { other_option: false })).to eq({ "hello" => "world" })
    end

    it "unpacks from a StringIO" do
      expect(MessagePack.unpack(StringIO.new(bin("92 01 02")))).to eq([1, 2])
      expect(MessagePack.load(StringIO.new(bin("81 a1 61 01")), symbolize_keys: true)).to eq({ a: 1 })
    end

    it "unpacks from a File" do
      Tempfile.create("msgpack-spec") do |file|
        file.binmode
        file.write(MessagePack.pack([1, "two", 3.0]))
        file.flush
        file.rewind
        expect(MessagePack.unpack(file)).to eq([1, "two", 3.0])
      end
    end

    it "unpacks from a pipe" do
      r, w = IO.pipe
      w.binmode
      w.write(MessagePack.pack({ "x" => [nil] }))
      w.close
      expect(MessagePack.unpack(r)).to eq({ "x" => [nil] })
      r.close
    end

    it "raises MalformedFormatError for extra bytes after the object" do
      expect { MessagePack.unpack(bin("01 02")) }
        .to raise_error(MessagePack::MalformedFormatError, "1 extra bytes after the deserialized object")
      expect { MessagePack.unpack(bin("c0 01 02 03")) }
        .to raise_error(MessagePack::MalformedFormatError, "3 extra bytes after the deserialized object")
      expect { MessagePack.load(bin("90 90")) }.to raise_error(MessagePack::MalformedFormatError)
    end

    it "raises MalformedFormatError for extra bytes read from an IO in the same read" do
      expect { MessagePack.unpack(StringIO.new(bin("01 02 03"))) }
        .to raise_error(MessagePack::MalformedFormatError, "2 extra bytes after the deserialized object")
    end

    it "raises EOFError for empty input" do
      expect { MessagePack.unpack("") }.to raise_error(EOFError)
      expect { MessagePack.unpack(StringIO.new("")) }.to raise_error(EOFError)
    end

    it "raises EOFError for truncated input" do
      ["92 01", "cd 00", "a3 61 62", "c4 05 00", "d7 ff 00", "81 a1 61", "dc 00"].each do |h|
        expect { MessagePack.unpack(bin(h)) }.to raise_error(EOFError), h
      end
    end

    it "raises MalformedFormatError for the invalid byte C1" do
      expect { MessagePack.unpack(bin("c1")) }.to raise_error(MessagePack::MalformedFormatError, /invalid byte/)
    end

    it "raises UnknownExtTypeError for unregistered ext types" do
      expect { MessagePack.unpack(bin("d4 01 00")) }.to raise_error(MessagePack::UnknownExtTypeError)
    end

    it "does not register Timestamp (-1) by default" do
      expect { MessagePack.unpack(bin("d6 ff 00 00 00 01")) }.to raise_error(MessagePack::UnknownExtTypeError)
    end
  end

  describe "exceptions" do
    it "has UnpackError < StandardError" do
      expect(MessagePack::UnpackError.superclass).to equal(StandardError)
    end

    it "has MalformedFormatError, StackError, UnexpectedTypeError, UnknownExtTypeError < UnpackError" do
      [MessagePack::MalformedFormatError, MessagePack::StackError,
       MessagePack::UnexpectedTypeError, MessagePack::UnknownExtTypeError].each do |klass|
        expect(klass.superclass).to equal(MessagePack::UnpackError), klass.name
      end
    end

    it "makes MessagePack::TypeError a Module unrelated to ::TypeError" do
      expect(MessagePack::TypeError).to be_instance_of(Module)
      expect(MessagePack::TypeError).not_to equal(::TypeError)
      expect(::TypeError.ancestors).not_to include(MessagePack::TypeError)
    end

    it "includes MessagePack::TypeError into UnexpectedTypeError only", :c_quirk do
      expect(MessagePack::UnexpectedTypeError.ancestors).to include(MessagePack::TypeError)
      expect(MessagePack::UnknownExtTypeError.ancestors).not_to include(MessagePack::TypeError)
      expect(MessagePack::MalformedFormatError.ancestors).not_to include(MessagePack::TypeError)
    end

    it "raises Ruby's ::EOFError (not an UnpackError) on short data" do
      error = begin
        MessagePack.unpack(bin("92"))
      rescue EOFError => e
        e
      end
      expect(error).to be_instance_of(EOFError)
      expect(error.message).to eq("end of buffer reached")
      expect(error).not_to be_a(MessagePack::UnpackError)
    end

    it "raises StackError for deep nesting" do
      expect { MessagePack.unpack(bin("91" * 200 + "c0")) }
        .to raise_error(MessagePack::StackError, /stack level too deep/)
    end

    it "can rescue UnexpectedTypeError as MessagePack::TypeError" do
      u = MessagePack::Unpacker.new
      u.feed(bin("81 01 01"))
      expect { u.read_array_header }.to raise_error(MessagePack::TypeError)
    end

    it "does not define UnderflowError on MRI" do
      expect(MessagePack.const_defined?(:UnderflowError, false)).to be(false)
    end
  end
end
