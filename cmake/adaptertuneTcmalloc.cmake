# adaptertune::tcmalloc: links gperftools' TCMalloc (libtcmalloc_minimal; Debian:
# libgoogle-perftools-dev) into a program as its malloc, as the adaptertune tool links it
# (README, "The CPU allocator"). Defined only where the library is found; the adaptertune library
# itself never links it, since which malloc a process uses is its application's choice.
#
# Included by this project's CMakeLists.txt and by the installed package's adaptertuneConfig.cmake,
# so that an application links it with
#   if(TARGET adaptertune::tcmalloc)
#     target_link_libraries(app PRIVATE adaptertune::tcmalloc)
#   endif()
if(NOT TARGET adaptertune::tcmalloc)
  find_library(ADAPTERTUNE_TCMALLOC_MINIMAL_LIBRARY tcmalloc_minimal)
  if(ADAPTERTUNE_TCMALLOC_MINIMAL_LIBRARY)
    add_library(adaptertune::tcmalloc INTERFACE IMPORTED)
    # --no-as-needed: a program calls no TCMalloc function by name, so a linker that drops
    # unused libraries would drop it.
    set_property(TARGET adaptertune::tcmalloc PROPERTY INTERFACE_LINK_LIBRARIES
                 "-Wl,--push-state,--no-as-needed" "${ADAPTERTUNE_TCMALLOC_MINIMAL_LIBRARY}"
                 "-Wl,--pop-state")
  endif()
endif()
