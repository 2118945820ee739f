# frozen_string_literal: true

module MessagePack
  class Factory
    # The native class defines initialize, dup, freeze, packer, unpacker and the
    # *_internal registry methods.

    # options: :packer / :unpacker (Proc, Method, Symbol or String; nil or a missing key
    # registers that side without a callable, as the C gem does: it shows in
    # registered_types and replaces an earlier one), :recursive, :oversized_integer_extension,
    # :optimized_symbols_parsing. A nil options registers both sides without a proc.
    def register_type(type, klass, options = { packer: :to_msgpack_ext, unpacker: :from_msgpack_ext })
      raise FrozenError, "can't modify frozen MessagePack::Factory" if frozen?

      if options
        options = options.dup
        # Set below only for callables whose direct call is known to be equivalent.
        options.delete(:packer_call)
        options.delete(:unpacker_call)
        packer = options[:packer]
        unpacker = options[:unpacker]
        unless packer.nil? || packer.is_a?(Proc)
          options[:packer], options[:packer_call] = ExtProc.for_packer(packer)
        end
        unless unpacker.nil? || unpacker.is_a?(Proc)
          options[:unpacker], options[:unpacker_call] = ExtProc.for_unpacker(klass, unpacker)
        end
      end

      register_type_internal(type, klass, options)
    end

    # selector :both gives [{type:, class:, packer:, unpacker:}]; :packer or :unpacker
    # lists only that side's procs. Ordered by type id.
    def registered_types(selector = :both)
      packers, unpackers = registered_types_internal

      list =
        case selector
        when :both
          # Each packer entry takes the unpacker registered under its type id;
          # unpackers left over are listed after them.
          unclaimed = unpackers.dup
          paired = packers.map do |klass, (type, packer, _flags)|
            unpacker_entry = unclaimed.delete(type)
            { type: type, class: klass, packer: packer, unpacker: unpacker_entry&.at(1) }
          end
          unclaimed.each do |type, (klass, unpacker, _flags)|
            paired << { type: type, class: klass, packer: nil, unpacker: unpacker }
          end
          paired
        when :packer
          packers.filter_map do |klass, (type, packer, _flags)|
            { type: type, class: klass, packer: packer } if packer
          end
        when :unpacker
          unpackers.filter_map do |type, (klass, unpacker, _flags)|
            { type: type, class: klass, unpacker: unpacker } if unpacker
          end
        else
          raise ArgumentError, "invalid selector #{selector}"
        end

      list.sort_by.with_index { |entry, index| [entry[:type], index] }
    end

    # A class counts when it is a registered class or inherits from one.
    def type_registered?(klass_or_type, selector = :both)
      case klass_or_type
      when Class
        registered_types(selector).any? do |entry|
          entry[:class].is_a?(Module) && klass_or_type <= entry[:class]
        end
      when Integer
        registered_types(selector).any? { |entry| entry[:type] == klass_or_type }
      else
        raise ArgumentError, "class or type id"
      end
    end

    # load/unpack(src, options = nil) and dump/pack(obj, io = nil, options = nil)
    # are native (fast paths that skip building a Packer/Unpacker per call).

    # An unfrozen factory is dup'd and frozen first, so later registrations do not reach
    # the pool. As in the C gem, dup drops the oversized_integer_extension and
    # optimized_symbols_parsing flags: freeze the factory before pooling to keep them.
    def pool(size = 1, **options)
      # Members are tagged with self for Factory#compact! (msgpack/memory.rb).
      Pool.new(frozen? ? self : dup.freeze, size, options.empty? ? nil : options, self)
    end

    # Turns register_type's :packer / :unpacker values into procs.
    #
    # They are built to be shareable between Ractors whenever what they call is: a
    # frozen factory (DefaultFactory above all) must hold shareable procs to be used
    # from every Ractor, and a Method never is one. So where the C gem keeps
    # Method#to_proc, this keeps a lambda that sends the method's name to its receiver;
    # callers cannot tell the difference. Procs given by the user are kept as they are.
    #
    # Each returns [proc, call]: the proc is what registered_types shows (and what
    # decides which Ractors may use it); call is what the extension calls directly,
    # without a Proc call or an argument Array per object: for a Method of a shareable
    # receiver (a Module) [receiver, name], sent exactly as the shareable lambda does
    # (the factory stays shareable); for any other Method the Method itself (bound when
    # registered, as the C gem's Method#to_proc is; only in the Ractor that registered
    # it, since a Method is never shareable); for a method name, the Symbol sent to the
    # object being packed (what Symbol#to_proc does).
    module ExtProc
      def self.for_packer(packer)
        case packer
        when String, Symbol
          name = packer.to_sym
          [Ractor.make_shareable(name.to_proc), name]
        when Method
          from_method(packer)
        else
          raise ::TypeError,
                "expected :packer argument to be a callable object, got: #{packer.inspect}"
        end
      end

      # A name means a class method of klass; a missing one raises NameError now.
      def self.for_unpacker(klass, unpacker)
        case unpacker
        when String, Symbol
          from_method(klass.method(unpacker))
        when Method
          from_method(unpacker)
        else
          raise ::TypeError,
                "expected :unpacker argument to be a callable object, got: #{unpacker.inspect}"
        end
      end

      def self.from_method(method)
        receiver = method.receiver
        name = method.name
        unless Ractor.shareable?(receiver) && reaches?(receiver, name, method)
          return [method.to_proc, method]
        end

        call = [receiver, name]
        if method.arity == 1
          # The common case (from_msgpack_ext(data), to_msgpack_ext): no
          # argument splat per call.
          [Ractor.make_shareable(lambda { |arg| receiver.__send__(name, arg) }), call]
        else
          [Ractor.make_shareable(lambda { |*args| receiver.__send__(name, *args) }), call]
        end
      end

      # False when sending name to receiver would run another definition than method,
      # e.g. for a Method bound from an ancestor's UnboundMethod.
      def self.reaches?(receiver, name, method)
        ::Kernel.instance_method(:method).bind_call(receiver, name) == method
      rescue NameError
        false
      end
    end
    private_constant :ExtProc

    # A set of frozen packers and unpackers made by one frozen factory and reused,
    # so that hot paths skip building a Packer/Unpacker per call.
    class Pool
      def initialize(factory, size, options = nil, owner = factory)
        options = nil if options.nil? || options.empty?
        @packers = MemberPool.new(factory, :packer, options, size, owner)
        @unpackers = MemberPool.new(factory, :unpacker, options, size, owner)
      end

      def load(data)
        @unpackers.with do |unpacker|
          unpacker.feed(data)
          unpacker.full_unpack
        end
      end

      def dump(object)
        @packers.with do |packer|
          packer.write(object)
          packer.full_pack
        end
      end

      # Yields a member and returns the block's value; the member goes back to the
      # pool (reset) afterwards, so it must not be kept.
      def packer(&block)
        @packers.with(&block)
      end

      def unpacker(&block)
        @unpackers.with(&block)
      end

      # Idle members of one kind. Members are made on demand, so there is no cap;
      # `size` is how many idle ones are kept. There is no lock: under the GVL
      # (one per Ractor, and a pool never leaves its Ractor) Array#pop and #push are
      # atomic, so no member is ever handed out twice. Two threads returning members
      # at once may both pass the size check, so the pool can keep a few more than
      # `size`, never more than the number of threads using it.
      class MemberPool
        def initialize(factory, kind, options, size, owner)
          @factory = factory
          @kind = kind
          @options = options
          @size = size
          @owner = owner
          @idle = []
        end

        def with
          member = @idle.pop || new_member
          begin
            yield member
          ensure
            if @idle.size < @size
              member.reset
              @idle.push(member)
            end
          end
        end

        private

        # A new member, tagged as one of owner's (for Factory#compact!).
        def new_member
          member = @factory.public_send(@kind, @options).freeze
          Memory.mark_pool_member(member, @owner)
        end
      end
      private_constant :MemberPool
    end
  end
end
