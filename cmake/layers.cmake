# Layer targets and their include views: how a wrong-way include fails to build.
#
# ropescope_layer(<target> [PUBLIC <layer target>...] [PRIVATE <layer target>...])
#
# Makes <target> (already created in the current source directory) a layer:
# links it to the given layer targets and gives it an include view,
# ${CMAKE_BINARY_DIR}/layer-include/<target>/, a directory of symlinks named
# after the layers it may see, each pointing at that layer's source directory:
# its own directory (named as includes spell it: "analysis", "kernels") and,
# transitively, those of every layer it links. The view is the target's only
# include root (PUBLIC: a consumer's own view contains it), so
# `#include "cpu/cpu_backend.hpp"` from a layer that does not link
# ropescope_cpu fails with "No such file or directory". Layers must be
# declared after the layers they link. Target properties keep the view's
# directories (ROPESCOPE_LAYER_LINKS) and names (ROPESCOPE_LAYER_VIEW); the
# global property ROPESCOPE_LAYERS lists every layer (tests/layering/ reads them).
#
# ropescope_layer_bundle(<name>): an INTERFACE target linking every layer
# declared so far; ropescope_layer() accepts it as a dependency (its view is
# every layer's).
function(ropescope_layer target)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "PUBLIC;PRIVATE")
  set(links ${CMAKE_CURRENT_SOURCE_DIR})
  foreach(dep IN LISTS arg_PUBLIC arg_PRIVATE)
    get_target_property(dep_links ${dep} ROPESCOPE_LAYER_LINKS)
    if(NOT dep_links)
      message(FATAL_ERROR "ropescope_layer(${target}): ${dep} is not a layer declared before it")
    endif()
    list(APPEND links ${dep_links})
  endforeach()
  list(REMOVE_DUPLICATES links)

  # The view: one symlink per visible layer directory; stale links (a layer
  # no longer linked) are removed, only links, never what they point at.
  set(view ${CMAKE_BINARY_DIR}/layer-include/${target})
  file(MAKE_DIRECTORY ${view})
  set(names "")
  foreach(dir IN LISTS links)
    get_filename_component(link_name ${dir} NAME)
    list(APPEND names ${link_name})
    file(CREATE_LINK ${dir} ${view}/${link_name} SYMBOLIC)
  endforeach()
  file(GLOB present RELATIVE ${view} LIST_DIRECTORIES true ${view}/*)
  foreach(entry IN LISTS present)
    if(NOT entry IN_LIST names)
      file(REMOVE ${view}/${entry})
    endif()
  endforeach()

  target_include_directories(${target} PUBLIC ${view})
  target_link_libraries(${target} PUBLIC ${arg_PUBLIC} PRIVATE ${arg_PRIVATE})
  set_target_properties(${target} PROPERTIES ROPESCOPE_LAYER_LINKS "${links}" ROPESCOPE_LAYER_VIEW "${names}")
  set_property(GLOBAL APPEND PROPERTY ROPESCOPE_LAYERS ${target})
endfunction()

function(ropescope_layer_bundle name)
  get_property(layers GLOBAL PROPERTY ROPESCOPE_LAYERS)
  add_library(${name} INTERFACE)
  target_link_libraries(${name} INTERFACE ${layers})
  set(links "")
  foreach(layer IN LISTS layers)
    get_target_property(layer_links ${layer} ROPESCOPE_LAYER_LINKS)
    list(APPEND links ${layer_links})
  endforeach()
  list(REMOVE_DUPLICATES links)
  set_target_properties(${name} PROPERTIES ROPESCOPE_LAYER_LINKS "${links}")
endfunction()
