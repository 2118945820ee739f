# frozen_string_literal: true

# Ractor safety: Packer, Unpacker and Buffer are not shareable; moving one raises Ruby's
# error, sending (copying) one never crashes.
# Shared objects, workouts and helpers: spec/support/ractor_scenarios.rb.

# The C gem is not Ractor-safe (docs/compatibility.md §16): nothing to check in the
# oracle run.
return if defined?(MSGPACK_SPEC_ORACLE) && MSGPACK_SPEC_ORACLE

require "stringio"

RSpec.describe "Ractor safety", :ractor do
  include RactorSpecHelpers

  describe "objects that are not shareable" do
    it "Packer, Unpacker and Buffer are not shareable" do
      [MessagePack::Packer.new, MessagePack::Unpacker.new, MessagePack::Buffer.new].each do |o|
        expect(Ractor.shareable?(o)).to be(false)
        expect { Ractor.make_shareable(o) }.to raise_error(Ractor::Error)
      end
    end

    it "moving a Packer or an Unpacker raises Ruby's error and leaves it usable" do
      pk = MessagePack::Packer.new.write(1)
      uk = MessagePack::Unpacker.new.feed("\x93\x01".b)
      receiver = Ractor.new do
        Thread.current.report_on_exception = false # it ends in the NoMethodError expected below
        o = Ractor.receive
        o.respond_to?(:write) ? o.write(2).to_s : o.feed("\x02\x03").read
      end
      [pk, uk].each do |obj|
        expect { receiver.send(obj, move: true) }.to raise_error(Ractor::Error, /can not move/)
      end
      receiver.send(:done)
      expect { ractor_value(receiver) }.to raise_error(Ractor::RemoteError) # :done has no #feed
      expect(pk.write(2).to_s).to eq("\x01\x02".b)
      expect(uk.feed("\x02\x03".b).read).to eq([1, 2, 3])
    end

    # On Ruby 3.1 a copy is made with rb_obj_clone (see above); Packer, Unpacker and
    # Buffer have no initialize_copy, so the copy arrives as a fresh, empty object.
    it "sending (copying) a Packer, Unpacker or Buffer never crashes and gives a usable object" do
      pk = MessagePack::Packer.new.write([1, 2])
      buf = MessagePack::Buffer.new << "abc"
      uk = MessagePack::Unpacker.new.feed("\x92\x01".b)
      expect { uk.read }.to raise_error(EOFError) # leaves a half-decoded array behind
      view = MessagePack::Packer.new.write(3).buffer
      results = [pk, buf, uk, view].map do |obj|
        r = Ractor.new do
          o = Ractor.receive
          next :not_sent if o.nil? # the main Ractor could not send its object
          sink = o.is_a?(MessagePack::Packer) ? o.buffer : o
          [o.class, o.is_a?(MessagePack::Unpacker) ? o.feed("\x05").read : (sink << "z").to_s.b[-1]]
        end
        begin
          r.send(obj)
        rescue Ractor::Error, TypeError => e
          # msgpack-rs refuses copies (TypeError "can't copy ..."): Ruby 3.1 would
          # otherwise deliver an empty object. Let the waiting Ractor finish cleanly.
          r.send(nil)
          expect(ractor_value(r)).to eq(:not_sent)
          next e.class
        end
        ractor_value(r)
      end
      expect(results).to all(eq(Ractor::Error).or(eq(TypeError)).or(be_an(Array)))
      arrays = results.grep(Array)
      expect(arrays.map(&:first) - [MessagePack::Packer, MessagePack::Buffer, MessagePack::Unpacker]).to eq([])
      expect(arrays.map(&:last)).to all(eq("z").or(eq(5)).or(eq([1, 5])))
      # the originals are intact
      expect(pk.to_s).to eq("\x92\x01\x02".b)
      expect(buf.to_s).to eq("abc")
      expect(uk.feed("\x02".b).read).to eq([1, 2])
      expect(view.to_s).to eq("\x03".b)
    end
  end
end
