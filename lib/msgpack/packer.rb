# frozen_string_literal: true

module MessagePack
  class Packer
    # The native class defines the constructor and every write/buffer method.

    # Copying a packer would share or split its buffer in surprising ways.
    undef_method :dup if method_defined?(:dup)
    undef_method :clone if method_defined?(:clone)

    # register_type(type, klass, method_name = nil) { |obj| payload }
    # The block wins; otherwise method_name.to_proc (a Symbol, or any Proc).
    # Like the C gem, a call with neither raises NoMethodError from nil.to_proc.
    def register_type(type, klass, method_name = nil, &block)
      raise ArgumentError, "expected Module/Class got: #{klass.inspect}" unless klass.is_a?(Module)

      ext_proc = block || method_name.to_proc
      raise FrozenError, "can't modify frozen MessagePack::Packer" if frozen?

      register_type_internal(type, klass, ext_proc)
    end

    # [{type:, class:, packer:}, ...] ordered by type id.
    def registered_types
      entries = registered_types_internal.map do |klass, (type, ext_proc, _flags)|
        { type: type, class: klass, packer: ext_proc }
      end
      entries.sort_by.with_index { |entry, index| [entry[:type], index] }
    end

    # A class counts when it is the registered class or inherits from it.
    def type_registered?(klass_or_type)
      case klass_or_type
      when Class
        registered_types.any? { |entry| klass_or_type <= entry[:class] }
      when Integer
        registered_types.any? { |entry| entry[:type] == klass_or_type }
      else
        raise ArgumentError, "class or type id"
      end
    end
  end
end
