# tachyon_generate(TARGET <target> SCHEMAS <file.tsch>... [OUTPUT_DIR <dir>])
#
# Generates the C++ header of every schema (and of the schemas they import)
# into OUTPUT_DIR (default: ${CMAKE_CURRENT_BINARY_DIR}/tachyon_gen/<target>)
# before <target> is built, and gives <target> that include directory and
# tachyon::tachyon. X.tsch becomes x.tsch.hpp: #include "x.tsch.hpp".
# List imported schemas in SCHEMAS too, so that editing them regenerates.
#
# The tachyon-gen it runs is, in order: TACHYON_GEN_EXECUTABLE if set; the
# one built with Go from the Tachyon source tree this file belongs to (a
# checkout, add_subdirectory, FetchContent); the one installed beside this
# file (find_package); tachyon-gen on PATH.

include_guard(GLOBAL)

set(TACHYON_GEN_EXECUTABLE "" CACHE FILEPATH "tachyon-gen binary; empty: build it with Go, or use the installed one, or find it on PATH")

# The Tachyon source tree, when this file is part of one (not installed).
if(EXISTS "${CMAKE_CURRENT_LIST_DIR}/../cmd/tachyon-gen")
    get_filename_component(_tachyon_source_dir "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
    set(TACHYON_SOURCE_DIR "${_tachyon_source_dir}" CACHE INTERNAL "Tachyon source tree")
endif()

# _tachyon_gen_build sets <out> to the tachyon-gen that the target
# tachyon_gen_tool builds with Go from the source tree, or to "" without Go
# or a source tree.
function(_tachyon_gen_build out)
    set(${out} "" PARENT_SCOPE)
    if(NOT TACHYON_SOURCE_DIR)
        return()
    endif()
    find_program(TACHYON_GO go)
    if(NOT TACHYON_GO)
        return()
    endif()
    set(exe "${CMAKE_BINARY_DIR}/tachyon-gen/tachyon-gen${CMAKE_EXECUTABLE_SUFFIX}")
    if(NOT TARGET tachyon_gen_tool)
        file(GLOB_RECURSE go_sources CONFIGURE_DEPENDS
            "${TACHYON_SOURCE_DIR}/cmd/*.go" "${TACHYON_SOURCE_DIR}/schema/*.go"
            "${TACHYON_SOURCE_DIR}/gen/*.go" "${TACHYON_SOURCE_DIR}/runtime/ring/*.go")
        list(FILTER go_sources EXCLUDE REGEX "_test\\.go$")
        add_custom_command(
            OUTPUT "${exe}"
            COMMAND "${TACHYON_GO}" build -o "${exe}" ./cmd/tachyon-gen
            WORKING_DIRECTORY "${TACHYON_SOURCE_DIR}"
            DEPENDS ${go_sources} "${TACHYON_SOURCE_DIR}/go.mod"
            COMMENT "Building tachyon-gen with Go"
            VERBATIM)
        add_custom_target(tachyon_gen_tool DEPENDS "${exe}")
    endif()
    set(${out} "${exe}" PARENT_SCOPE)
endfunction()

# _tachyon_gen_tool sets <out> to the tachyon-gen binary to run.
function(_tachyon_gen_tool out)
    if(TACHYON_GEN_EXECUTABLE)
        set(${out} "${TACHYON_GEN_EXECUTABLE}" PARENT_SCOPE)
        return()
    endif()
    _tachyon_gen_build(built)
    if(built)
        set(${out} "${built}" PARENT_SCOPE)
        return()
    endif()
    if(TACHYON_GEN_INSTALLED AND EXISTS "${TACHYON_GEN_INSTALLED}")
        set(${out} "${TACHYON_GEN_INSTALLED}" PARENT_SCOPE)
        return()
    endif()
    find_program(TACHYON_GEN_ON_PATH tachyon-gen)
    if(NOT TACHYON_GEN_ON_PATH)
        message(FATAL_ERROR "tachyon_generate: no tachyon-gen: install Go (to build it from the Tachyon sources), put tachyon-gen on PATH (go install github.com/tachyon-io/tachyon/cmd/tachyon-gen), or set TACHYON_GEN_EXECUTABLE")
    endif()
    set(${out} "${TACHYON_GEN_ON_PATH}" PARENT_SCOPE)
endfunction()

function(tachyon_generate)
    cmake_parse_arguments(PARSE_ARGV 0 arg "" "TARGET;OUTPUT_DIR" "SCHEMAS")
    if(NOT arg_TARGET OR NOT arg_SCHEMAS)
        message(FATAL_ERROR "tachyon_generate: usage: tachyon_generate(TARGET <target> SCHEMAS <file.tsch>... [OUTPUT_DIR <dir>])")
    endif()
    if(arg_UNPARSED_ARGUMENTS)
        message(FATAL_ERROR "tachyon_generate: unexpected arguments: ${arg_UNPARSED_ARGUMENTS}")
    endif()
    if(NOT TARGET ${arg_TARGET})
        message(FATAL_ERROR "tachyon_generate: ${arg_TARGET} is not a target: call tachyon_generate after add_executable or add_library")
    endif()
    if(NOT arg_OUTPUT_DIR)
        set(arg_OUTPUT_DIR "${CMAKE_CURRENT_BINARY_DIR}/tachyon_gen/${arg_TARGET}")
    endif()
    set(schemas "")
    foreach(schema IN LISTS arg_SCHEMAS)
        get_filename_component(schema "${schema}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
        list(APPEND schemas "${schema}")
    endforeach()

    _tachyon_gen_tool(tool)
    set(stamp "${arg_OUTPUT_DIR}/.tachyon-gen.stamp")
    set(tool_deps "${tool}")
    if(TARGET tachyon_gen_tool AND NOT TACHYON_GEN_EXECUTABLE)
        list(APPEND tool_deps tachyon_gen_tool)
    endif()
    # tachyon-gen leaves unchanged headers untouched, so only the sources
    # that include a changed header rebuild.
    add_custom_command(
        OUTPUT "${stamp}"
        COMMAND "${tool}" generate --cpp-out "${arg_OUTPUT_DIR}" ${schemas}
        COMMAND "${CMAKE_COMMAND}" -E touch "${stamp}"
        DEPENDS ${schemas} ${tool_deps}
        COMMENT "Generating C++ headers for ${arg_TARGET} with tachyon-gen"
        VERBATIM)
    add_custom_target(${arg_TARGET}_tachyon_gen DEPENDS "${stamp}")
    add_dependencies(${arg_TARGET} ${arg_TARGET}_tachyon_gen)

    get_target_property(type ${arg_TARGET} TYPE)
    set(scope PUBLIC)
    if(type STREQUAL "INTERFACE_LIBRARY")
        set(scope INTERFACE)
    endif()
    file(MAKE_DIRECTORY "${arg_OUTPUT_DIR}")
    target_include_directories(${arg_TARGET} ${scope} "${arg_OUTPUT_DIR}")
    target_link_libraries(${arg_TARGET} ${scope} tachyon::tachyon)
endfunction()
