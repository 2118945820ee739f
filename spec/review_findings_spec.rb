# frozen_string_literal: true

# Findings of a hostile review of the reliability and callback work, each fixed and kept
# here (docs/compatibility.md §19).

RSpec.describe "review findings" do
  describe "a recursive ext unpacker that fails before reading its whole payload", :since_1_7 do
    let(:factory) do
      f = MessagePack::Factory.new
      f.register_type(5, Object, packer: ->(_, _) {}, unpacker: ->(u) { u.read; raise "boom" }, recursive: true)
      f.register_type(6, Object, packer: ->(_, _) {}, unpacker: ->(_) { raise "boom" }, recursive: true)
      f.register_type(7, Object, packer: ->(_, _) {}, unpacker: ->(_) { throw :out }, recursive: true)
      f
    end

    def reads(u, n) = Array.new(n) { (u.read rescue $!.class) }

    # [ext(payload 01 02), 3], 9: the unread payload and the rest of the array go.
    [["after reading part of it", "d5 05 01 02"], ["before reading anything", "d5 06 01 02"]].each do |what, ext|
      it "#{what}: the next read is the next top-level object, fed whole or byte by byte" do
        data = bin("92 #{ext} 03 09")
        u = factory.unpacker
        u.feed(data)
        expect(reads(u, 3)).to eq([RuntimeError, 9, EOFError])
        u = factory.unpacker
        data.each_char { |c| u.feed(c) }
        expect(reads(u, 3)).to eq([RuntimeError, 9, EOFError])
      end
    end

    it "when the proc throws" do
      u = factory.unpacker
      u.feed(bin("92 d5 07 01 02 03 09"))
      expect(catch(:out) { u.read }).to be_nil
      expect(reads(u, 2)).to eq([9, EOFError])
    end
  end

  describe "Method registrations are bound when registered, as in the C gem" do
    it "redefining or removing the method afterwards changes nothing" do
      o = Object.new
      def o.d(_) = "orig"
      def o.l(s) = "orig:#{s}"
      f = MessagePack::Factory.new
      f.register_type(1, Symbol, packer: o.method(:d), unpacker: o.method(:l))
      def o.d(_) = "NEW"
      def o.l(s) = "NEW:#{s}"
      expect(f.dump(:x)).to eq(bin("d6 01") + "orig".b)
      expect(f.load(bin("d5 01 61 62"))).to eq("orig:ab")
      o.singleton_class.remove_method(:d)
      expect(f.dump(:x)).to eq(bin("d6 01") + "orig".b)
    end

    it "except a Module's methods: registered as a shareable lambda that sends the name, they bind late" do
      m = Module.new do
        module_function

        def w(_) = "m1"
        def r(_) = "r1"
      end
      f = MessagePack::Factory.new
      f.register_type(2, Symbol, packer: m.method(:w), unpacker: m.method(:r))
      m.module_eval do
        module_function

        def w(_) = "m2"
        def r(_) = "r2"
      end
      # What registered_types shows (the lambda) is what runs: the factory stays
      # shareable, so frozen it can be used from every Ractor.
      expect(f.dump(:x)).to eq(bin("d5 02") + "m2".b)
      expect(f.load(bin("d5 02 61 62"))).to eq("r2")
      expect(f.registered_types.first[:packer].call(:x)).to eq("m2")
      expect(Ractor.shareable?(f.freeze)).to be(true)
    end
  end

  it "registering many classes takes time linear in their number", skip: MSGPACK_SPEC_ORACLE && "timing" do
    f = MessagePack::Factory.new
    classes = Array.new(8000) { Class.new }
    t = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    classes.each_with_index { |c, i| f.register_type(i % 128, c, packer: :to_s, unpacker: :new) }
    # 3 s before (each registration copied the whole table); the C gem takes ~0.1 s.
    expect(Process.clock_gettime(Process::CLOCK_MONOTONIC) - t).to be < 1.5
    expect(f.registered_types.size).to eq(8000)
  end

  describe "a header read while an object is half read", skip: MSGPACK_SPEC_ORACLE && "msgpack-rs refuses it" do
    it "is refused instead of returning a header from inside the pending object" do
      u = MessagePack::Unpacker.new
      u.feed(bin("92 01"))
      expect { u.read }.to raise_error(EOFError)
      u.feed(bin("92 03 04 05"))
      expect { u.read_array_header }.to raise_error(MessagePack::UnpackError, /half read/)
      expect { u.skip_nil }.to raise_error(MessagePack::UnpackError, /half read/)
      expect(u.read).to eq([1, [3, 4]])
      expect(u.read).to eq(5)
    end
  end
end
