# frozen_string_literal: true

# Ractor isolation of the callables registered on a factory (issue "GC.compact gives
# wrong values on Ruby 3.2+, and GC callbacks race with other Ractors", part 3).
#
# DefaultFactory is shareable while unfrozen, so every Ractor can reach the callables the
# main Ractor registered on it, including Procs that are not shareable. Another Ractor's
# DefaultFactory.dup (or clone) used to copy them, and Ractor.make_shareable(copy) then
# either failed or, for a Proc that could be made shareable, froze the main Ractor's Proc
# and made it shareable: the copy then called it from the other Ractor. Now a copy made
# in a Ractor that may not call a registered callable gets nil instead (as
# registered_types already showed it there), so make_shareable(copy) works and never
# reaches the main Ractor's Procs.
#
# Everything runs in child processes: registrations on DefaultFactory cannot be undone.
# Results come back as a Marshal dump; Ractor results through RactorHelpers.

# The C gem is not Ractor-safe (docs/compatibility.md §16).
return if defined?(MSGPACK_SPEC_ORACLE) && MSGPACK_SPEC_ORACLE

RSpec.describe "Factory copies and Ractor isolation", :ractor do
  ISOLATION_PRELUDE = <<~'RUBY'
    Warning[:experimental] = false
    require "msgpack"
    class Foo
      attr_reader :v
      def initialize(v) = @v = v
      def ==(other) = other.class == self.class && other.v == v
    end
    class Bar < Foo; end
    # Made in a module body: self is the (shareable) module and nothing else is captured,
    # so Ractor.make_shareable could make these shareable (and freeze them).
    module Isolatable
      PACK = ->(o) { "MAIN#{o.v}" }
      UNPACK = ->(s) { Foo.new("main:#{s}") }
    end
    def err = yield.then { |v| v.is_a?(String) ? v.b : v } rescue "#{$!.class}: #{$!.message[0, 200]}"
    def types(f) = f.registered_types.select { |t| t[:type] >= 40 }.map { |t| [t[:type], t[:packer].nil?, t[:unpacker].nil?] }
    def report(r) = puts([Marshal.dump(r)].pack("m0"))
  RUBY

  # Main registers non-shareable Procs on DefaultFactory: type 40 top-level lambdas (self
  # is main: make_shareable would fail on them), type 41 the Isolatable ones.
  ISOLATION_DEFAULT_FACTORY_DUP = <<~'RUBY'
    local_pack = ->(o) { "MAIN#{o.v}" }
    local_unpack = ->(s) { Foo.new("main:#{s}") }
    df = MessagePack::DefaultFactory
    df.register_type(40, Foo, packer: local_pack, unpacker: local_unpack)
    df.register_type(41, Bar, packer: Isolatable::PACK, unpacker: Isolatable::UNPACK)
    r = {}
    r[:ractor] = RactorHelpers.ractor_value(Ractor.new do
      out = {}
      %i[dup clone].each do |m|
        copy = MessagePack::DefaultFactory.public_send(m)
        o = out[m] = {}
        o[:before] = [copy.frozen?, Ractor.shareable?(copy), types(copy)]
        o[:make_shareable] = err { Ractor.make_shareable(copy).equal?(copy) }
        o[:after] = [copy.frozen?, Ractor.shareable?(copy), types(copy)]
        o[:dump] = [err { copy.dump(Foo.new(1)) }, err { copy.dump(Bar.new(2)) }]
        o[:load] = [err { copy.load("\xD4\x28\x41".b) }, err { copy.load("\xD4\x29\x42".b) }]
        o[:pool] = err { copy.pool(1).dump([Foo.new(3)]) }
      end
      # The copy takes new registrations (shareable callables) before it is frozen, and
      # is then usable from yet another Ractor.
      copy = MessagePack::DefaultFactory.dup
      copy.register_type(42, Bar, packer: Ractor.make_shareable(proc { |o| "B#{o.v}" }),
                                  unpacker: Ractor.make_shareable(proc { |s| Bar.new(s) }))
      Ractor.make_shareable(copy)
      out[:third_ractor] = RactorHelpers.ractor_value(Ractor.new(copy) do |f|
        [types(f), f.load(f.dump(Bar.new(7))) == Bar.new("B7"), err { f.dump(Foo.new(1)) }]
      end)
      out[:default_factory] = [err { MessagePack.pack(Foo.new(1)) }, err { MessagePack.pack(Bar.new(1)) }]
      out
    end)
    r[:main] = {
      lambdas: [local_pack, local_unpack, Isolatable::PACK, Isolatable::UNPACK].map { |l| [Ractor.shareable?(l), l.frozen?] },
      default_factory: [df.frozen?, types(df), MessagePack.pack(Foo.new(1)).b, MessagePack.unpack(MessagePack.pack(Bar.new(2))).v],
      main_dup: types(df.dup),
    }
    report(r)
  RUBY

  # A dedicated, unfrozen factory (not shareable) handed to a Ractor: Ruby 3.1 copies it
  # (rb_obj_clone in the sending Ractor), later Rubies refuse with Ractor::Error.
  ISOLATION_DEDICATED_FACTORY = <<~'RUBY'
    f = MessagePack::Factory.new
    f.register_type(41, Bar, packer: Isolatable::PACK, unpacker: Isolatable::UNPACK)
    r = {}
    r[:ractor] = begin
      RactorHelpers.ractor_value(Ractor.new(f) do |g|
        c = g.dup
        [types(g), err { g.dump(Bar.new(1)) }, err { g.load("\xD4\x29\x42".b) },
         err { Ractor.make_shareable(c).equal?(c) }, types(c), err { c.dump(Bar.new(1)) }]
      end)
    rescue Ractor::Error => e
      "#{e.class}: #{e.message}"
    end
    r[:main] = [Ractor.shareable?(Isolatable::PACK), Isolatable::PACK.frozen?, f.dump(Bar.new(1)).b, types(f)]
    report(r)
  RUBY

  # Frozen factories with shareable callables are shareable; their copies in another
  # Ractor keep the callables, and can be frozen and shared again.
  ISOLATION_FROZEN_FACTORIES = <<~'RUBY'
    module Shared
      PACK = Ractor.make_shareable(->(o) { "S#{o.v}" })
      UNPACK = Ractor.make_shareable(->(s) { Foo.new(s) })
    end
    class Bar
      def to_msgpack_ext = v.to_s
      def self.from_msgpack_ext(s) = new(s.to_i)
    end
    f = MessagePack::Factory.new
    f.register_type(43, Foo, packer: Shared::PACK, unpacker: Shared::UNPACK)
    f.register_type(44, Bar) # defaults: :to_msgpack_ext / :from_msgpack_ext, stored shareable
    f.freeze
    r = { main: [f.frozen?, Ractor.shareable?(f), Ractor.make_shareable(f).equal?(f)] }
    cl = f.clone
    r[:clone_in_main] = [cl.frozen?, Ractor.shareable?(cl), err { Ractor.make_shareable(cl).equal?(cl) }]
    r[:ractor] = RactorHelpers.ractor_value(Ractor.new(f) do |g|
      c = g.dup
      d = g.clone
      e = g.clone(freeze: false)
      copies = [c, d, e].map { |x| [x.frozen?, Ractor.shareable?(x), types(x)] }
      c.register_type(45, Symbol)
      c.freeze
      shared = [Ractor.shareable?(c), Ractor.make_shareable(c).equal?(c)]
      used = RactorHelpers.ractor_value(Ractor.new(c) do |h|
        back = h.load(h.dump([Foo.new(1), Bar.new(2), :sym]))
        [back.map { |x| [x.class.name, x.respond_to?(:v) ? x.v : x] }, err { h.register_type(46, Foo) }]
      end)
      [g.equal?(Ractor.make_shareable(g)), copies, shared, used, err { g.register_type(47, Foo) }]
    end)
    report(r)
  RUBY

  # Packers, Unpackers and Buffers cannot be copied, in any Ractor: #dup and #clone are
  # undefined (as in the C gem since 1.6.1) and Kernel's own raise TypeError.
  ISOLATION_NO_COPIES = <<~'RUBY'
    module Probe
      CALL = lambda do
          objs = [MessagePack::Packer.new, MessagePack::Unpacker.new, MessagePack::Buffer.new,
                MessagePack::DefaultFactory.packer, MessagePack::Factory.new.unpacker]
        objs.map do |o|
          [o.class.name, err { o.dup }.to_s[/\A\S+(?=: )/], err { o.clone }.to_s[/\A\S+(?=: )/],
           err { Kernel.instance_method(:dup).bind_call(o) }, err { Kernel.instance_method(:clone).bind_call(o) }]
        end
      end
    end
    probe = Ractor.make_shareable(Probe::CALL)
    report(main: probe.call, ractor: RactorHelpers.ractor_value(Ractor.new(probe) { |pr| pr.call }))
  RUBY

  def child(script)
    stdout, stderr, status = run_isolated_ruby(RactorHelpers::REQUIRE_LINE + ISOLATION_PRELUDE + script)
    raise "child failed (#{status.inspect}):\n#{stderr[0, 3000]}" unless status.success?
    raise "child wrote to stderr:\n#{stderr[0, 3000]}" unless stderr.empty?

    Marshal.load(stdout.lines.last.strip.unpack1("m0")) # rubocop:disable Security/MarshalLoad
  end

  describe "DefaultFactory.dup and .clone in another Ractor, main having registered non-shareable Procs" do
    before(:context) { @r = child(ISOLATION_DEFAULT_FACTORY_DUP) }

    %i[dup clone].each do |m|
      it "#{m}: Ractor.make_shareable(copy) succeeds; the copy shows nil for the main Ractor's Procs" do
        o = @r[:ractor][m]
        expect(o[:before]).to eq([false, false, [[40, true, true], [41, true, true]]])
        expect(o[:make_shareable]).to be(true)
        expect(o[:after]).to eq([true, true, [[40, true, true], [41, true, true]]])
      end

      it "#{m}: the copy never calls the main Ractor's Procs (the types are as if unregistered)" do
        o = @r[:ractor][m]
        expect(o[:dump]).to all(start_with("NoMethodError: undefined method")) # no to_msgpack: not "MAIN1"
        expect(o[:load]).to all(eq("MessagePack::UnknownExtTypeError: unexpected extension type"))
        expect(o[:pool]).to start_with("NoMethodError: undefined method")
      end
    end

    it "the main Ractor's Procs stay unshareable and unfrozen, and keep working there" do
      expect(@r[:main][:lambdas]).to eq([[false, false]] * 4)
      frozen, types, packed, back = @r[:main][:default_factory]
      expect([frozen, types]).to eq([false, [[40, false, false], [41, false, false]]])
      expect(packed).to eq("\xC7\x05\x28MAIN1".b)
      expect(back).to eq("main:MAIN2")
      expect(@r[:main][:main_dup]).to eq([[40, false, false], [41, false, false]]) # a copy in main keeps them
    end

    it "DefaultFactory itself still raises Ractor::IsolationError for them in the other Ractor" do
      expect(@r[:ractor][:default_factory]).to all(match(/\ARactor::IsolationError: .*ext type 4[01]\b/))
    end

    it "a shared copy takes new shareable registrations and works in a third Ractor" do
      types, round_trip, foo = @r[:ractor][:third_ractor]
      expect(types).to eq([[40, true, true], [41, true, true], [42, false, false]])
      expect(round_trip).to be(true)
      expect(foo).to start_with("NoMethodError: undefined method")
    end
  end

  it "a dedicated unfrozen factory sent to a Ractor: refused, or (Ruby 3.1) a copy that never calls main's Procs" do
    r = child(ISOLATION_DEDICATED_FACTORY)
    if r[:ractor].is_a?(String)
      expect(r[:ractor]).to match(/\ARactor::Error: can ?not copy/)
    else
      types, dump, load, shared, copy_types, copy_dump = r[:ractor]
      expect(types).to eq([[41, true, true]])
      expect(dump).to match(/\ARactor::IsolationError: .*ext type 41\b/)
      expect(load).to match(/\ARactor::IsolationError: .*ext type 41\b/)
      expect(shared).to be(true)
      expect(copy_types).to eq([[41, true, true]])
      expect(copy_dump).to start_with("NoMethodError: undefined method")
    end
    expect(r[:main]).to eq([false, false, "\xC7\x05\x29MAIN1".b, [[41, false, false]]])
  end

  it "frozen factories with shareable callables are shareable; copies in a Ractor keep the callables" do
    r = child(ISOLATION_FROZEN_FACTORIES)
    expect(r[:main]).to eq([true, true, true])
    same, copies, shared, used, frozen_err = r[:ractor]
    expect(same).to be(true)
    registered = [[43, false, false], [44, false, false]]
    expect(copies.map { |frozen, _shareable, types| [frozen, types] }).to eq([[false, registered], [true, registered], [false, registered]])
    expect(copies.map { |_, shareable, _| shareable }.values_at(0, 2)).to eq([false, false]) # unfrozen copies
    expect(shared).to eq([true, true])
    expect(used[0]).to eq([["Foo", "S1"], ["Bar", 2], ["Symbol", :sym]])
    expect(used[1]).to start_with("FrozenError")
    expect(frozen_err).to start_with("FrozenError")
  end

  # Bug: a frozen factory with a registration by method names (register_type(44, Bar),
  # now stored as the bound Methods Bar#to_msgpack_ext / Bar.from_msgpack_ext) is
  # shareable, but its clone (frozen, made by Kernel#clone without Factory#freeze) is not,
  # and Ractor.make_shareable(clone) raises "can not make shareable object for
  # #<Method: Bar.from_msgpack_ext(s) ...>". dup + freeze is shareable.
  it "the clone of a frozen shareable factory is shareable (also with method-name registrations)", :aggregate_failures do
    r = child(ISOLATION_FROZEN_FACTORIES)
    expect(r[:ractor][1][1]).to eq([true, true, [[43, false, false], [44, false, false]]])
    expect(r[:clone_in_main]).to eq([true, true, true])
  end

  it "Packers, Unpackers and Buffers refuse dup and clone in the main Ractor and in others" do
    r = child(ISOLATION_NO_COPIES)
    expected = %w[MessagePack::Packer MessagePack::Unpacker MessagePack::Buffer MessagePack::Packer MessagePack::Unpacker].map do |name|
      [name, "NoMethodError", "NoMethodError", "TypeError: can't copy #{name}", "TypeError: can't copy #{name}"]
    end
    expect(r[:main]).to eq(expected)
    expect(r[:ractor]).to eq(expected)
  end
end
