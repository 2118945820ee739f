# frozen_string_literal: true

module MessagePack
  class Unpacker
    # The native class defines the constructor and every read/feed method.

    # Copying an unpacker would share or split its buffer and parse state.
    undef_method :dup if method_defined?(:dup)
    undef_method :clone if method_defined?(:clone)

    # register_type(type, klass, method_name), which calls klass.method_name(payload),
    # or register_type(type, klass = nil) { |payload| object }.
    def register_type(type, klass = nil, method_name = nil, &block)
      if klass && method_name
        ext_proc = klass.method(method_name).to_proc
      elsif block
        ext_proc = block
      else
        raise ArgumentError, "register_type takes either 3 arguments or a block"
      end
      raise FrozenError, "can't modify frozen MessagePack::Unpacker" if frozen?

      register_type_internal(type, klass, ext_proc)
    end

    # [{type:, class:, unpacker:}, ...] ordered by type id.
    def registered_types
      entries = registered_types_internal.map do |type, (klass, ext_proc, _flags)|
        { type: type, class: klass, unpacker: ext_proc }
      end
      entries.sort_by { |entry| entry[:type] }
    end

    # Unlike Packer, a class must be exactly the registered one: no subclasses.
    def type_registered?(klass_or_type)
      case klass_or_type
      when Class
        registered_types.any? { |entry| entry[:class] == klass_or_type }
      when Integer
        registered_types.any? { |entry| entry[:type] == klass_or_type }
      else
        raise ArgumentError, "class or type id"
      end
    end
  end
end
